"""The pages' searches (the results page, a new child's duplicate check, the auditors' search) run
in the search lane (directory/http/lanes.py): with searches waiting on an Elasticsearch node that
has stopped answering, a child's card still opens, and each waiting page ends as a clear page."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.stuck_node import searching_through_a_stuck_node
from tests.web.test_search_pages import OLIVIA, post_search
from tests.web.world import World, sign_in

WAITING = 12  # more than the process's shared threads and its search lane together (4 each)


def test_results_pages_waiting_on_a_stuck_node_leave_the_card_its_thread(
    browser: TestClient, web_app: FastAPI, world: World
) -> None:
    sign_in(browser, world, "pat")
    assert post_search(browser, purpose="considering-caf", **OLIVIA) == (303, "/search/results")
    card = f"/children/{world.children['olivia']}"
    lane = web_app.state.settings.request_threads  # (the search lane's width)
    with searching_through_a_stuck_node(web_app) as node, ThreadPoolExecutor(WAITING + 1) as pool:
        pages = [pool.submit(browser.get, "/search/results") for _ in range(WAITING)]
        assert node.wait_for(lane, timeout=30), "the searches never reached the node"
        time.sleep(0.5)
        assert node.held == lane
        opened = pool.submit(browser.get, card).result(timeout=20)
        assert opened.status_code == 200 and "Olivia" in opened.text
        assert all(not p.done() for p in pages)
        node.let_go()
        shown = [p.result(timeout=60) for p in pages]
    assert [r.status_code for r in shown] == [503] * WAITING
    assert all("search" in r.text.lower() and "Traceback" not in r.text for r in shown)
    again = browser.get("/search/results")
    assert again.status_code == 200 and "Olivia Smith" in again.text
