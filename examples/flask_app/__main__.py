"""``python -m examples.flask_app [--port N]``: serve the example on 127.0.0.1."""

from __future__ import annotations

import argparse

from . import create_app

parser = argparse.ArgumentParser(prog="python -m examples.flask_app")
parser.add_argument("--port", type=int, default=5000)
arguments = parser.parse_args()
create_app().run(host="127.0.0.1", port=arguments.port)
