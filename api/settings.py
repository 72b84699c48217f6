"""Service settings from the environment (prefix ``SKYGRID_``), e.g. ``SKYGRID_DATABASE_URL``.

The JWT secret has no default in code: set ``SKYGRID_JWT_SECRET``, or let :func:`ensure_secret` generate one
on first serve and keep it in the data folder (file ``jwt-secret``, readable by its owner only).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.categories import DEFAULT_URGENT, CategoryTable, load_table
from api.workflow import TimeLimits

#: Default time-limit overrides per category code and level: none, the table of :mod:`api.categories` holds
#: the defaults (derived from the detector's category scheme).
DEFAULT_HANDLE_MINUTES: dict[str, dict[str, int]] = {}


class Settings(BaseSettings):
    """Everything the service reads from its environment.

    Attributes:
        database_url: SQLAlchemy URL; SQLite file in the data folder by default, or
            ``postgresql+psycopg://…`` for PostGIS.
        data_dir: uploads, exports, photos and the generated JWT secret live here.
        jwt_secret: HMAC key of access tokens; no default (see :func:`ensure_secret`).
        token_minutes: lifetime of an access token.
        max_upload_bytes: largest accepted upload (413 above it).
        rate_limit_per_minute: requests per client address and minute (429 above it); 0 turns it off.
        dispatch_minutes_urgent / dispatch_minutes_normal: time from report to dispatch.
        recheck_minutes: time from handled to closed (on-site verification).
        handle_minutes: minutes to handle per category code and level (compound, community, street) over the
            defaults of :mod:`api.categories`, e.g. ``{"0505": {"compound": 30}}``; ``"*"`` for the rest.
        urgent_categories: category codes always dispatched within ``dispatch_minutes_urgent``.
        categories_csv: a city's category table (the detector's ``--categories`` CSV:
            ``class_name,code,name,name_en,standard``) over the default GB/T 30428.2 codes.
        import_dirs: folders besides the data folder that flight footage (video + SRT, photos) may be
            read from.
        stream_position_wait_s: how long a stream flight waits for the first position on its MAVLink link
            before it fails.
    """

    model_config = SettingsConfigDict(env_prefix="SKYGRID_")

    database_url: str | None = None
    data_dir: Path = Path("skygrid-data")
    jwt_secret: SecretStr | None = None
    token_minutes: int = Field(default=8 * 60, gt=0)
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    rate_limit_per_minute: int = Field(default=6000, ge=0)
    dispatch_minutes_urgent: int = Field(default=10, gt=0)
    dispatch_minutes_normal: int = Field(default=30, gt=0)
    recheck_minutes: int = Field(default=60, gt=0)
    handle_minutes: dict[str, dict[str, int]] = Field(default_factory=lambda: dict(DEFAULT_HANDLE_MINUTES))
    tianditu_key: SecretStr | None = None  # Tianditu WMTS key (SKYGRID_TIANDITU_KEY); offers that basemap
    urgent_categories: list[str] = Field(default_factory=lambda: sorted(DEFAULT_URGENT))
    categories_csv: Path | None = None
    import_dirs: list[Path] = Field(default_factory=list)
    stream_position_wait_s: float = Field(default=10.0, gt=0, le=600)

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to ``skygrid.sqlite`` in the data folder."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'skygrid.sqlite').resolve()}"

    def category_table(self) -> CategoryTable:
        """The case categories with this city's time limits and urgency (see :mod:`api.categories`)."""
        return load_table(self.categories_csv, limits=self.handle_minutes, urgent=self.urgent_categories)

    def time_limits(self, categories: CategoryTable) -> TimeLimits:
        """The deadlines of the closed loop for ``categories``."""
        return TimeLimits(
            dispatch_urgent=self.dispatch_minutes_urgent,
            dispatch_normal=self.dispatch_minutes_normal,
            recheck=self.recheck_minutes,
            handle=categories.handle_minutes(),
            urgent=categories.urgent_codes(),
        )

    def secret(self) -> str:
        """The JWT secret; raises when none is configured."""
        if self.jwt_secret is None or not self.jwt_secret.get_secret_value():
            raise RuntimeError(
                "no JWT secret: set SKYGRID_JWT_SECRET or start with `skygrid serve`, which generates one"
            )
        return self.jwt_secret.get_secret_value()


def ensure_secret(settings: Settings) -> Settings:
    """Return settings with a JWT secret: the configured one, or one kept in ``data_dir/jwt-secret``.

    The file is created on first use with 48 random bytes (URL-safe base64), mode 0600, atomically.
    """
    if settings.jwt_secret is not None:
        return settings
    path = settings.data_dir / "jwt-secret"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".jwt-secret.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        os.replace(tmp, path)
    return settings.model_copy(update={"jwt_secret": SecretStr(path.read_text().strip())})
