"""Settings: built-in defaults < config file (TOML) < environment variables `RENRAKU_*`.

The config file is `$RENRAKU_CONFIG`, or `renraku.toml` in RENRAKU_HOME when it exists. Only
settings live here; rule lists, templates and reading thresholds are data files of their own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_TEMPLATES_DIR = PACKAGE_DIR / "samples" / "templates"


def default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "renraku"


def _config_file() -> Path | None:
    explicit = os.environ.get("RENRAKU_CONFIG")
    if explicit:
        return Path(explicit)
    home = Path(os.environ.get("RENRAKU_HOME") or default_home())
    candidate = home / "renraku.toml"
    return candidate if candidate.exists() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RENRAKU_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="データの置き場所")
    db_url: str | None = Field(None, description="SQLAlchemy URL; 既定は RENRAKU_HOME の SQLite")
    templates_dir: Path = DEFAULT_TEMPLATES_DIR
    reading_config: Path = PACKAGE_DIR / "extractors" / "reading.toml"
    render_dpi: int = Field(200, description="ページ画像とピクセル座標の解像度")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, description="ページを並行して読むプロセス数")

    imap_host: str | None = None
    imap_port: int | None = None
    imap_user: str | None = None
    imap_password: SecretStr | None = None
    imap_folder: str = "INBOX"
    imap_tls: Literal["ssl", "starttls", "none"] = "ssl"
    imap_cafile: Path | None = None
    imap_processed: str = Field("$Renraku", description="処理済みの印: キーワード（$で始まる）か移動先フォルダ名")
    imap_timeout: float = 60.0
    imap_account: str | None = Field(None, description="受信箱の識別名（既定は user@host）")
    scan_dir: Path | None = None
    scan_processed_dir: Path | None = Field(None, description="取り込み済みの移動先（既定 scan_dir/processed）")
    scan_settle_seconds: float | None = None
    intake_config: Path = PACKAGE_DIR / "pipeline" / "intake.toml"
    interval_minutes: float = Field(5.0, description="定期取り込みの間隔（分）")
    cron: str | None = Field(None, description="定期取り込みの cron 式（指定すると間隔より優先）")
    work_pool: str = Field("renraku", description="renraku deploy: 取り込みを走らせる Prefect のワークプール名")
    intake_runs: int = Field(2, ge=1, description="renraku deploy: 同時に走る取り込みの上限（ワーカーの数）")

    secret_key: SecretStr | None = Field(None, description="UI のセッション署名鍵（既定は RENRAKU_HOME/secret_key）")
    ui_secure_cookies: bool = Field(False, description="TLS の内側で動かすとき true（Cookie に Secure）")
    ui_login_max_failures: int = Field(5, description="同じ名前でこの回数失敗すると一定時間ログインできない")
    ui_login_max_failures_per_address: int = Field(20, description="同じ接続元からの失敗の上限（一定時間）")
    ui_login_window_minutes: float = Field(15.0, description="ログイン失敗を数える時間（分）")
    ui_trusted_proxies: int = Field(0, description="前段の TLS プロキシの数（X-Forwarded-For を信頼する段数）")
    ui_host: str = "127.0.0.1"
    ui_port: int = 8080

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_tls: Literal["ssl", "starttls", "none"] = "starttls"
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_cafile: Path | None = None
    notify_from: str = "renraku@localhost"
    notify_to: str | None = Field(None, description="至急の通知（紛失・盗難）の宛先: 事務局のアドレス")

    confirmation_config: Path = Field(PACKAGE_DIR / "sinks" / "confirmation.toml",
                                      description="送受信確認メールの文面と不達通知の見分け方")
    mcs_config: Path = Field(PACKAGE_DIR / "sinks" / "mcs.toml", description="MCS アカウント一覧の列")
    confirm_remind_days: float = Field(7, description="返信がないとき再送（催促）するまでの日数 N")
    confirm_overdue_days: float = Field(14, description="返信がないとき期限切れとして一覧に出すまでの日数 M")
    confirm_copy_to_self: bool = Field(True, description="確認メールの控えを事務局のアドレス（notify_from）にも送る")
    outbox_retry_seconds: float = Field(300,
                                        description="送信に失敗したメールを再び試すまでの秒数（回ごとに倍、上限6時間）")

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'renraku.db'}"

    @property
    def documents_dir(self) -> Path:
        return self.home / "documents"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
