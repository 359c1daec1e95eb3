"""The FHIR R4 REST surface under /fhir: metadata, read, search, $match, create/update, history, Bundles.

Every child-scoped resource is cut from the child's card (directory.service.build_card), so
shielding and sensitive-involvement rules are exactly the app API's. Reads are audited as
reads of the record (service.read_card); a search is audited once, with every child returned.

One module per interaction, the writes one per resource type:

| module | what it does |
|---|---|
| `context.py` | `Ctx` (what one request works with, its pictures kept), the body and parameter dependencies |
| `read.py` | read one resource (child-scoped: audited as a read of the record) |
| `catalogue.py` | read and search the catalogue (practitioners, organisations, services, localities) |
| `searchset.py` | what a search found, and the searchset Bundle it becomes |
| `search.py` | search: Patient, the child-scoped types, AuditEvent; parse, run, audit |
| `match.py` | Patient/$match |
| `writes/` | create and update, one module per type; `writes/__init__.py` holds the tables |
| `history.py` | EpisodeOfCare `_history` and vread |
| `bundle.py` | transaction and batch Bundles |
| `subscription.py` | rest-hook Subscriptions |
| `routes.py` | `build_router()`: the routes, named as auth/policy.py holds their policies |

Modules stand in layers, each importing only those below it (import-linter checks it): routes;
bundle; writes; history | match | search | subscription; read; catalogue; searchset; context. The
write modules import only `writes/common.py`, not each other. Nothing here imports this package's
`__init__`: import the module (`interop.api.routes`).
"""
