"""What every vendor simulator shares: JSON answers as the vendors send them.

- :func:`json_answer`: an HTTP 200 JSON answer with Chinese text as is (not ``\\u``
  escaped), ``Content-Type: application/json; charset=utf-8``;
- :func:`exact_json_answer`: the same with ``Content-Type: application/json`` exactly, for
  vendors whose clients compare the header (Tencent's SDK does).

Decoding and looking at a received image is :func:`worker.simulator.scene.look`.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def json_answer(body: Any) -> web.Response:
    return web.json_response(body, dumps=dumps)


def exact_json_answer(body: Any) -> web.Response:
    response = web.Response(body=dumps(body).encode())
    response.headers["Content-Type"] = "application/json"
    return response
