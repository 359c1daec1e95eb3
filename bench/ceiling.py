"""The ceiling: the smallest FastAPI JSON endpoint, served the same way as the app."""

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    """Accepts the same JSON the search endpoint gets."""

    model_config = {"extra": "allow"}


@app.post("/api/v1/children/search")
def ceiling(body: Body) -> dict[str, object]:
    """Echo a fixed, search-sized answer."""
    return {"hits": [], "total": 0, "fingerprint": "0" * 64}
