"""The web app and its server: the only package that imports gradio.

`server` starts the process (its own temp folder, signals, process-wide settings), `engine`
holds the models, the cache and the sessions, `ui` lays out the page and its events, `guard`
checks requests before gradio sees them.
"""
