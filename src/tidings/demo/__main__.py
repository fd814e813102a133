"""``python -m tidings.demo`` runs the demo (see ``tidings.demo.run``)."""

import sys

# The demo's own dependencies are the `demo` extra, not part of the service's install: without
# them, say in one line what to install rather than print a traceback.
_EXTRA = ("faker", "aiosmtpd")

try:
    from tidings.demo.run import main
except ModuleNotFoundError as exc:
    missing = (exc.name or "").partition(".")[0]
    if missing not in _EXTRA:
        raise
    print(f"error: the demo needs {missing}: pip install 'tidings[demo]'", file=sys.stderr)
    sys.exit(2)

sys.exit(main())
