"""The web UI, served by ``covex server`` at ``/``: server-rendered pages over the same service as the API.

A thin adapter like the REST API: each page reads through ``RegistryService`` and renders a Jinja2
template; no business rule lives here or in a template. Every asset ships in the package (``static/``).

- ``session``: signing in with an API token kept in an HttpOnly, SameSite cookie, and CSRF checks;
- ``pages``: the pages themselves.
"""
