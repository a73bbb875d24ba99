"""The ``balancer`` resource agent: hakeeper's balancer as a cluster resource.

    [[resource]]
    id = "lb"
    agent = "balancer"
    params = { config = "/etc/hakeeper/balancer.toml", workers = 2 }

It is the ``process`` agent running ``hakeeper balance --config FILE [--workers N]``, so it
gets the same supervision (own session, PID and start time recorded, SIGTERM then SIGKILL,
probe after an agent restart). The file is validated when the cluster config is loaded,
so a broken balancer file is refused before anything starts. Its backends may be a static
list or follow a clone (``clone = { resource, port, cluster_config }``, see
`hakeeper.balancer.clone_backends`), so a balancer placed on the virtual-IP holder spreads
clients over the live instances wherever they run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hakeeper.agents.base import MetaData, ParamSpec
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.metadata import check_params
from hakeeper.agents.process import ProcessAgent, ProcessConfig
from hakeeper.balancer.config import load_config
from hakeeper.errors import ConfigError

PARAMS = (
    ParamSpec("config", required=True, shortdesc="the balancer file (TOML)"),
    ParamSpec("workers", default="1", shortdesc="worker processes (SO_REUSEPORT)"),
    ParamSpec("stop_timeout", type="duration", default="10s", shortdesc="SIGTERM→SIGKILL"),
)


class BalancerAgent(ProcessAgent):
    @classmethod
    def from_spec(cls, target: str, context: AgentContext) -> BalancerAgent:
        instance, params = context.instance, context.params
        check_params(f"balancer {instance}", params, PARAMS)
        if "config" not in params:
            raise ConfigError(f"balancer {instance}: give params.config, the balancer file")
        path = Path(str(params["config"]))
        load_config(path)  # refuse a broken file now, not when the resource starts
        workers = str(params.get("workers", "1"))
        if not workers.isdigit() or int(workers) < 1:
            raise ConfigError(f"balancer {instance}: workers must be a whole number ≥ 1")
        command = [sys.executable, "-m", "hakeeper", "balance", "--config", str(path)]
        command += ["--workers", workers, "--log-level", "warning"]
        process_params: dict[str, object] = {"command": command}
        if "stop_timeout" in params:
            process_params["stop_timeout"] = params["stop_timeout"]
        return cls(instance, ProcessConfig.from_params(process_params), state_dir=context.state_dir)

    def meta_data(self) -> MetaData:
        return MetaData(
            name="balancer",
            shortdesc="hakeeper's L4/L7 load balancer",
            parameters=PARAMS,
        )
