"""The web app and its server: the only package that imports gradio.

- `server` starts the process (its own temp folder, signals, process-wide settings); `engine`
  holds the models, the cache and the sessions; `guard` refuses requests at the HTTP level.
- `choices`: what the page offers (classes, models, methods, units) and where its hints sit;
  `layout`: the page's components (`Page`); `analyses_tab` and `study_tab`: a tab each, with
  its components and handlers.
- `handlers`: the events' handlers, each returning its outputs by component; `hints`: failures
  in words, and on the page beside the control that caused them.
- `wiring`: the events and the named API endpoints that join components to handlers;
  `validation`: every input's check before gradio reads it; `url_state`: the view in the
  page's address; `jobs`: which request of a page is its newest.
- `gradio_internals`: every use of gradio's private names (tests/test_gradio_internals.py).

A new panel: its components in `layout` (or a tab module of its own), its handler in
`handlers`, its event in `wiring`. A new endpoint: a handler and one line in
`wiring.api_endpoints`, its inputs' checks in `validation.page_params`.
"""
