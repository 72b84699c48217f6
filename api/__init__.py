"""SkyGrid service (FastAPI): storage, access control, plans, flags and the closed-loop case workflow.

Run it with ``skygrid serve`` (SQLite in ``./skygrid-data`` by default, or ``--db postgresql+psycopg://…`` for
PostGIS); the OpenAPI documentation is at ``/docs``. In Python: ``api.app.create_app(settings, database)``.

Modules: ``settings`` (``SKYGRID_*`` environment), ``db`` (engines, sessions, Alembic), ``models`` (tables),
``geometry`` (WGS-84 geometry column, SQLite R*Tree / PostGIS GiST), ``security`` (argon2, JWT, territories),
``audit`` (hash-chained log), ``workflow`` (case state machine), ``districts`` / ``plans`` / ``cases`` / ``jobs``
(operations on storage), ``routes`` (HTTP), ``app`` (error map, limits), ``cli``.
"""
