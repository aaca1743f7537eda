"""The web UI, served by ``covex server`` at ``/``: server-rendered pages over the same service as the API.

A thin adapter like the REST API: each page reads through ``RegistryService`` as the signed-in user and
renders a Jinja2 template; each form calls one service function. No business rule lives here or in a
template, and the service refuses what the viewer may not do even when a form is forced. Every asset
ships in the package (``static/``).

- ``session``: signing in with an API token kept in an HttpOnly, SameSite cookie, and CSRF checks;
- ``web``: templates, rendering, error pages, forms;
- ``signin``, ``browse``, ``compare``, ``actions``, ``inbox``, ``audit``, ``admin``: one module per area.
"""

from fastapi import APIRouter

from covex.ui import actions, admin, admin_hooks, audit, browse, compare, inbox, signin
from covex.ui.web import error_page, is_ui_path, mount_static

router = APIRouter(include_in_schema=False)
for _area in (signin, actions, inbox, audit, admin, admin_hooks, compare, browse):
    # Flat, as the API's areas are (covex/server/app.py): FastAPI matches an included router's routes on
    # every request that gets as far as it, pages or not.
    router.routes.extend(_area.router.routes)

__all__ = ["error_page", "is_ui_path", "mount_static", "router"]
