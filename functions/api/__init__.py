"""The HTTPS API (FastAPI): ``create_app(settings)`` in :mod:`functions.api.app`."""
