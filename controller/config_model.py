"""The typed configuration models (CONTRACT section 1); `controller.config` loads them.

Every model forbids unknown keys and is strict: a string or boolean where a number belongs is an
error, not a coercion. The models import nothing of the loader or the cross-field checks, so
both can import them without a cycle; `controller.config` re-exports every name here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretBytes,
    SecretStr,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from controller.drivers.kinds import pool_kind

Kw = Annotated[float, Field(ge=0)]
PositiveS = Annotated[float, Field(gt=0)]
NonNegS = Annotated[float, Field(ge=0)]
Port = Annotated[int, Field(ge=1, le=65535)]
UnitId = Annotated[int, Field(ge=0, le=255)]
Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")]
HoldOrCurtail = Literal["hold", "curtail"]
ErcotProduct = Literal["np6-788-cd", "np6-905-cd"]


def _known_kind(name: str) -> str:
    pool_kind(name)  # raises with the known kinds listed
    return name


# One of the registered pool driver kinds (controller/drivers/kinds.py).
PoolDriverName = Annotated[str, AfterValidator(_known_kind)]
ERCOT_PRODUCTS: tuple[ErcotProduct, ...] = ("np6-788-cd", "np6-905-cd")
ERCOT_B2C_URL = "https://ercotb2c.b2clogin.com/ercotb2c.onmicrosoft.com/B2C_1_PUBAPI-ROPC-FLOW/oauth2/v2.0/token"
Listen = Annotated[str, Field(pattern=r"^[^:\s]*:\d{1,5}$")]  # host:port, host may be empty


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SiteConfig(_Strict):
    name: Name = "site"
    poi_limit_kw: Kw
    backup_limit_kw: Kw = 0.0
    aux_kw: Kw = 0.0
    margin_kw: Kw = 0.0
    settlement_point: str = "HB_WEST"


class MqttConfig(_Strict):
    host: str = "127.0.0.1"
    port: Port = 1883
    client_id: str = "curtaild"
    username: str = ""
    password_file: str = ""
    # Never read from the TOML file (rejected there): env CURTAILD_MQTT__PASSWORD,
    # password_file or $CREDENTIALS_DIRECTORY/mqtt_password fill it.
    password: SecretStr = SecretStr("")
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    keepalive_s: Annotated[int, Field(ge=1, le=65535)] = 15
    topic_prefix: Annotated[str, Field(min_length=1)] = "curtaild/site"


class FeedsConfig(_Strict):
    price_topic: str = "ercot/prices/#"
    price_stale_s: PositiveS = 1200.0
    on_price_stale: HoldOrCurtail = "hold"
    dispatch_topic: str = "qse/site/dispatch"
    dispatch_heartbeat_s: NonNegS = 0.0
    on_dispatch_stale: HoldOrCurtail = "curtail"
    hashprice_topic: str = ""


class EconomicsConfig(_Strict):
    hashprice_usd_per_ph_day: Annotated[float, Field(gt=0)] = 50.0
    pool_fee: Annotated[float, Field(ge=0, lt=1)] = 0.02
    hysteresis_usd_per_mwh: Annotated[float, Field(ge=0)] = 5.0
    min_run_s: NonNegS = 300.0
    min_curtail_s: NonNegS = 300.0


class ControlConfig(_Strict):
    tick_s: Annotated[float, Field(ge=0.05)] = 1.0
    decision_budget_ms: Annotated[float, Field(gt=0)] = 1000.0
    confirm_timeout_s: Annotated[float, Field(ge=0.5)] = 5.0
    ramp_up_kw_per_s: Annotated[float, Field(gt=0)] = 2000.0
    state_dir: str = "/var/lib/curtaild"
    shutdown_action: HoldOrCurtail = "hold"
    # Extension: a meter reading older than this is unknown (I3). Meters are polled about 1 s.
    meter_stale_s: Annotated[float, Field(gt=0)] = 5.0
    # An mqtt pool whose last `state` is older than this is unreachable (CONTRACT 7).
    pool_stale_s: PositiveS = 30.0
    # How long the state store keeps the audit trail: a year of demand-response proof.
    audit_retention_days: Annotated[float, Field(gt=0)] = 400.0


class DispatchConfig(_Strict):
    eea1_fraction: Annotated[float, Field(ge=0, le=1)] = 1.0
    eea2_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0
    eea3_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0
    frequency_trip_hz: Annotated[float, Field(gt=0)] = 59.7
    frequency_reset_hz: Annotated[float, Field(gt=0)] = 59.9
    frequency_reset_s: NonNegS = 600.0


class OverrideConfig(_Strict):
    max_ttl_s: Annotated[int, Field(ge=1)] = 86400
    hmac_key_file: str = ""
    max_clock_skew_s: NonNegS = 120.0
    # Loaded by `load_config` from hmac_key_file (never from the TOML file or env), so the
    # runtime builds its validator without I/O that can fail; None: overrides are unsigned.
    # Excluded from dumps so that a dumped config renders back into a loadable file.
    hmac_key: SecretBytes | None = Field(default=None, exclude=True)


class MetricsConfig(_Strict):
    listen: Listen = "127.0.0.1:9108"


class ErcotApiConfig(_Strict):
    """`curtaild feed-ercot` settings (CONTRACT 2.6); the daemon accepts and ignores them."""

    base_url: Annotated[str, Field(min_length=1)] = "https://api.ercot.com/api/public-reports"
    token_url: Annotated[str, Field(min_length=1)] = ERCOT_B2C_URL
    client_id: str = "fec253ea-0d06-4272-a5e6-b478baeecd70"
    username: str = ""
    password_file: str = ""
    subscription_key_file: str = ""
    # Env only (CURTAILD_ERCOT_API__PASSWORD, ..._SUBSCRIPTION_KEY), never the file: typed here
    # so a shared environment does not fail the daemon's load. The feeder resolves its files.
    password: SecretStr = Field(default=SecretStr(""), exclude=True)
    subscription_key: SecretStr = Field(default=SecretStr(""), exclude=True)
    products: Annotated[list[ErcotProduct], Field(min_length=1)] = Field(
        default_factory=lambda: list(ERCOT_PRODUCTS)
    )
    poll_s: PositiveS = 60.0
    max_requests_per_min: Annotated[int, Field(ge=1)] = 30
    publish_topic: Annotated[str, Field(min_length=1)] = "ercot/prices"
    metrics_listen: Listen = "127.0.0.1:9109"


class HaConfig(_Strict):
    """Active/standby on etcd (docs/ha.md): off unless `enabled`. Each node of a pair has its
    own `node_name` and `mqtt.client_id` (on one host also `control.state_dir` and
    `metrics.listen`); everything else is the same."""

    enabled: bool = False
    node_name: str = ""  # required when enabled: the name the leader key holds
    etcd_endpoints: Annotated[list[Annotated[str, Field(pattern=r"^https?://")]],
                              Field(min_length=1)] = Field(
        default_factory=lambda: ["http://127.0.0.1:2379"]
    )  # fmt: skip
    lease_ttl_s: Annotated[int, Field(ge=2, le=60)] = 6
    # The longest write that may be in flight when the deadline comes, plus clock-rate drift:
    # a leader stops commanding this long before its lease can expire in etcd.
    fence_margin_s: PositiveS = 2.0
    etcd_timeout_s: PositiveS = 1.0  # each etcd request, per member

    @model_validator(mode="after")
    def _coherent(self) -> HaConfig:
        if not self.enabled:
            return self
        if not self.node_name:
            raise ValueError("ha.node_name is required when ha.enabled: each node its own name")
        # A renewal every ttl/4 must be answered before the deadline it extends.
        lead_s = self.lease_ttl_s - self.fence_margin_s
        if lead_s <= self.lease_ttl_s / 4 + self.etcd_timeout_s:
            raise ValueError(
                f"ha.lease_ttl_s {self.lease_ttl_s} less fence_margin_s {self.fence_margin_s} "
                f"must exceed a quarter of the TTL plus etcd_timeout_s {self.etcd_timeout_s}: "
                "otherwise a healthy leader fences itself between renewals"
            )
        return self


HourEnding = Annotated[int, Field(ge=1, le=24)]
ReserveProduct = Literal["RRS", "ECRS", "NSRS"]


class OfferConfig(_Strict):
    """One ancillary-service offer of the backtest's reserve strategy (`[[backtest.offers]]`)."""

    product: ReserveProduct
    mw: Annotated[float, Field(ge=0)] | None = None  # a fixed quantity, or ...
    share: Annotated[float, Field(ge=0, le=1)] | None = None  # ... a share of the fleet
    hours_ending: Annotated[list[HourEnding], Field(min_length=1)] = Field(
        default_factory=lambda: list(range(1, 25))
    )

    @model_validator(mode="after")
    def _one_quantity(self) -> OfferConfig:
        if (self.mw is None) == (self.share is None):
            raise ValueError(f"offer {self.product}: give exactly one of mw or share")
        return self


class BacktestConfig(_Strict):
    """The value stack of `curtaild backtest` (reserves, 4CP); the daemon accepts and ignores it."""

    transmission_usd_per_kw_year: Annotated[float, Field(ge=0)] = 0.0
    fourcp_threshold: Annotated[float, Field(gt=0, le=2)] = 0.95
    fourcp_hours_ending: Annotated[list[HourEnding], Field(min_length=1)] = Field(
        default_factory=lambda: [16, 17, 18]
    )
    offers: list[OfferConfig] = Field(default_factory=list)


class MeterConfig(_Strict):
    name: Name
    role: Literal["site", "gpu", "aux"]
    host: str
    port: Port
    unit_id: UnitId = 1
    power_register: Annotated[int, Field(ge=0, le=65534)] = 0
    frequency_register: Annotated[int, Field(ge=0, le=65534)] = 2
    islanded_input: Annotated[int, Field(ge=0, le=65535)] = 0


class GpuTenantConfig(_Strict):
    name: Name
    firm_kw: Kw
    meters: list[str] = Field(default_factory=list)
    pdus: list[str] = Field(default_factory=list)


class PoolConfig(_Strict):
    name: Name
    driver: PoolDriverName
    max_kw: Kw
    efficiency_j_per_th: Annotated[float, Field(gt=0)]
    strike_usd_per_mwh: float = 0.0
    ufr: bool = False
    pdus: list[str] = Field(default_factory=list)
    host: str | None = None
    port: Port | None = None
    unit_id: UnitId | None = None
    setpoint_register: Annotated[int, Field(ge=0, le=65534)] = 0
    measured_register: Annotated[int, Field(ge=0, le=65532)] = 0


class PduConfig(_Strict):
    name: Name
    host: str
    port: Port
    unit_id: UnitId = 1
    outlets: Annotated[int, Field(ge=1, le=64)]
    outlet_kw: Annotated[float, Field(ge=0, le=65.5)]
    protected: bool = False
    first_coil: Annotated[int, Field(ge=0, le=65471)] = 0
    first_power_register: Annotated[int, Field(ge=0, le=65471)] = 0


class Config(BaseSettings):
    """The whole site configuration; build it with `load_config`, not directly."""

    model_config = SettingsConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        env_prefix="CURTAILD_",
        env_nested_delimiter="__",
        nested_model_default_partial_update=False,
    )

    site: SiteConfig
    mqtt: MqttConfig = MqttConfig()
    feeds: FeedsConfig = FeedsConfig()
    economics: EconomicsConfig = EconomicsConfig()
    control: ControlConfig = ControlConfig()
    dispatch: DispatchConfig = DispatchConfig()
    override: OverrideConfig = OverrideConfig()
    metrics: MetricsConfig = MetricsConfig()
    ercot_api: ErcotApiConfig = ErcotApiConfig()
    backtest: BacktestConfig = BacktestConfig()
    ha: HaConfig = HaConfig()
    meters: list[MeterConfig] = Field(default_factory=list)
    gpu_tenants: list[GpuTenantConfig] = Field(default_factory=list)
    pools: list[PoolConfig] = Field(default_factory=list)
    pdus: list[PduConfig] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what the caller passes: `load_config` reads the file and the environ it is given
        # itself, so building a Config never reads process state behind the caller's back.
        return (init_settings,)
