"""`python app.py` starts the web app, as `sa-viz serve` does (see sa_viz/app/server.py)."""

from sa_viz.app.server import main

if __name__ == "__main__":
    main()
