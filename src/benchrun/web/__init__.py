"""`benchrun view`: a local web app over the ledger (runs, drill-down, comparisons, labelling).

`benchrun.web.app.create_app` builds the Starlette app; `benchrun.web.pages` builds each page's
plain data from `benchrun.api` and the report code (the same dicts the JSON twins return);
`benchrun.web.labelling` is the browser labelling queue over `benchrun.judge_trust`.
"""
