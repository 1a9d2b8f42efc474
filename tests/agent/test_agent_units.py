"""AGENT.toml, address expansion, the state file and the bounded pyasic driver."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from controller.agent.config import expand_miners, load_agent_config
from controller.agent.driver import MinerDriver, takes_power_limit
from controller.agent.store import MinerKnowledge, PoolMemory, PoolStore
from controller.cli import main
from controller.errors import ConfigError
from controller.sim.miners.fleet import MinerSpec
from tests.agent.conftest import MakeFleet

GOOD = """
[mqtt]
host = "127.0.0.1"
port = 1883
[agent]
topic_prefix = "curtaild/abilene-1"
poll_s = 5
miner_timeout_s = 10
state_dir = "/var/lib/curtaild-agent"
miner_nominal_w = 3250
miner_j_per_th = 30.0
[[agent.pools]]
name = "c01"
miners = ["10.0.1.10", "10.0.1.20-10.0.1.69", "10.0.2.0/28"]
"""


def test_the_contract_example_loads_and_expands(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(GOOD)
    config = load_agent_config(path)
    ips = config.agent.pools[0].ips
    assert len(ips) == 1 + 50 + 14  # a /28 has 14 hosts
    assert ips[0] == "10.0.1.10" and ips[1] == "10.0.1.20" and ips[-1] == "10.0.2.14"
    assert config.agent.poll_s == 5.0


def test_duplicates_collapse_and_bad_entries_are_refused() -> None:
    assert expand_miners(["10.0.0.1", "10.0.0.1-10.0.0.2"]) == ["10.0.0.1", "10.0.0.2"]
    for bad in (["10.0.0.9-10.0.0.1"], ["miner-1"], ["10.0.0.0/8"]):
        with pytest.raises(ValueError, match=r"."):
            expand_miners(bad)


def test_a_bad_config_lists_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(GOOD.replace("poll_s = 5", 'poll_s = "5"').replace("10.0.1.10", "nope"))
    with pytest.raises(ConfigError) as caught:
        load_agent_config(path)
    assert len(caught.value.problems) == 2
    assert main(["agent", "--config", str(path)]) == 2
    assert "agent.poll_s" in capsys.readouterr().err


def test_the_state_file_round_trips_and_survives_garbage(tmp_path: Path) -> None:
    store = PoolStore(tmp_path, "c01")
    memory = PoolMemory(17, {"10.0.0.1": MinerKnowledge("S19j Pro", "LuxOS", 3000.0, 25.0)})
    store.save(memory)
    assert store.load() == memory
    store.path.write_text("{not json")
    assert store.load() == PoolMemory()


async def test_every_call_is_bounded_by_the_miner_timeout(make_fleet: MakeFleet) -> None:
    fleet = await make_fleet([MinerSpec("luxos"), MinerSpec("stock_antminer")])
    driver = MinerDriver(timeout_s=0.5)
    lux, stock = fleet.ips
    found = await driver.discover(lux)
    assert found is not None and found.limits_w[0] < found.limits_w[-1] == found.nominal_w
    assert takes_power_limit(found.handle)
    stock_found = await driver.discover(stock)
    assert stock_found is not None and not takes_power_limit(stock_found.handle)
    assert stock_found.limits_w == () and stock_found.nominal_w == 3068.0  # rated S19j Pro
    fleet[lux].state.answering = False
    started = time.monotonic()
    assert await driver.read(lux, found.handle) is None
    assert await driver.sleep(lux, found.handle) is False
    assert time.monotonic() - started < 1.5  # two calls, each cut at 0.5 s (pyasic: 100 s)
    assert driver.failures == 2
    assert await driver.discover("127.0.0.0") is None  # nothing there: no exception either


def test_the_shipped_example_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "agent.example.toml"
    config = load_agent_config(example)
    assert [p.name for p in config.agent.pools] == ["c01", "c02"]
    assert len(config.agent.pools[1].ips) == 62


def test_the_agent_names_its_extra_when_pyasic_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(GOOD)
    monkeypatch.setitem(sys.modules, "pyasic", None)
    assert main(["agent", "--config", str(path)]) == 1
    assert "pip install 'curtaild[agent]'" in capsys.readouterr().err
