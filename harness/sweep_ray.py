"""The Ray executor: each unit of work is a Ray task asking for the grid's resources
(``num_cpus``, ``num_gpus``, ``memory``), on a cluster started with ``ray start --head`` (more
nodes join with ``ray start --address HEAD:PORT``). Ray retries a task whose worker process or
node died (``max_retries``); an exception inside a cell is not retried: the runner stores it as a
failed result. Every node needs the harness importable (installed, or the checkout on its path:
Ray puts the driver's working directory on its workers' path) and its data directory.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from harness.errors import HarnessError
from harness.sweep import OnDone, Sweep, request_spec, run_unit, unit_error_records

log = logging.getLogger("harness")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise HarnessError("--executor ray needs Ray: pip install '.[ray]' (or pip install 'ray>=2.40')") from None
    return ray


def _check_address(address: str) -> None:
    """Fail fast (seconds, not Ray's minute of retries) when nothing listens at HOST:PORT."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise HarnessError(f"--address {address!r}: expected auto or HOST:PORT (e.g. 127.0.0.1:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as exc:
        raise HarnessError(
            f"--address {address}: no Ray cluster there ({exc.strerror or exc}); start one with "
            f"`ray start --head --port {port}` or give the address `ray start` printed"
        ) from None


def _resolve_auto(ray: Any) -> str:
    """``auto``: the cluster ``ray start`` last recorded on this machine (or RAY_ADDRESS)."""
    try:
        from ray._private.services import canonicalize_bootstrap_address_or_die
    except ImportError:  # another Ray version: let ray.init look for it
        return "auto"
    try:
        return canonicalize_bootstrap_address_or_die("auto")
    except ConnectionError as exc:
        raise HarnessError(f"--address auto: no running Ray cluster found ({exc}); start one with "
                           "`ray start --head --node-ip-address 127.0.0.1` first") from None


def connect(address: str | None) -> Any:
    ray = _import_ray()
    if address == "auto":
        address = _resolve_auto(ray)
    if address not in (None, "auto", "local"):
        _check_address(address)  # also catches a stale address recorded by a cluster that has gone
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address in (None, "local"):
            # a private cluster on this machine's loopback, for this command only ("local": never
            # the address a past `ray start` left in /tmp/ray)
            ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise HarnessError(f"--address {address}: no running Ray cluster found ({exc}); start one with "
                           "`ray start --head --node-ip-address 127.0.0.1` first") from None
    return ray


def run_ray(sweep: Sweep, pending: list[int], address: str | None, max_parallel: int | None,
            retries: int, on_done: OnDone) -> None:
    ray = connect(address)
    try:
        remote = ray.remote(max_retries=retries, retry_exceptions=False)(run_unit)
        imports = list(sweep.grid.imports)
        queue = list(pending)
        in_flight: dict[Any, int] = {}
        while queue or in_flight:
            while queue and (max_parallel is None or len(in_flight) < max_parallel):
                i = queue.pop(0)
                res = sweep.units[i].resources
                options: dict[str, Any] = {"num_cpus": res.cpus, "num_gpus": res.gpus}
                if res.memory_bytes:
                    options["memory"] = res.memory_bytes
                in_flight[remote.options(**options).remote(request_spec(sweep.units[i].request), imports)] = i
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            i = in_flight.pop(ready[0])
            try:
                records = ray.get(ready[0])
            except Exception as exc:  # the worker died more than `retries` times, or the unit could not start
                records = unit_error_records(sweep.units[i], f"{type(exc).__name__}: {str(exc)[-2000:]}")
            on_done(i, records)
    finally:
        ray.shutdown()  # disconnects this driver; a cluster started with `ray start` keeps running
