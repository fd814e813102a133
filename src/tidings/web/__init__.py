"""The HTTP surface of ``tidings serve``: the versioned API (``/v1``), the staff console
(``/console``) and the operational endpoints (``/healthz``, ``/readyz``, ``/metrics``).

One ASGI app (``web.app.create_app``) over the same ``Tidings`` the CLI uses. Every route
declares its permission through ``web.guard`` (``requires``, ``console_requires``,
``public``); a test walks the routes and proves each one refuses missing and insufficient
credentials.
"""
