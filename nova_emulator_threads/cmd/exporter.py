#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.


"""``nova-emulator-threads exporter``: ``measure`` and ``audit`` for
Prometheus.

Serves ``/metrics`` (prometheus-client's HTTP server) on the address
``--listen`` names; every scrape reads this host (see
``nova_emulator_threads.host.metrics`` for the metrics). It runs until
it is stopped (SIGTERM or SIGINT, exit status 0); a bad option or an
address it cannot listen on is exit status 2 with one line on stderr.
"""

import argparse
import signal
import threading
import types
import typing

import prometheus_client
from prometheus_client import registry as prom_registry

from nova_emulator_threads import exception
from nova_emulator_threads.cmd import host_options
from nova_emulator_threads.cmd import output
from nova_emulator_threads.host import libvirt_domains
from nova_emulator_threads.host import metrics
from nova_emulator_threads.host import snapshot


def add_parser(subparsers: typing.Any,
               parents: typing.Sequence[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        'exporter', parents=parents,
        help='serve what measure and audit find as Prometheus metrics',
        description='Serve Prometheus metrics at http://ADDRESS:PORT/'
                    "metrics: each vCPU's run and wait time, the emulator "
                    "threads' CPU time, on the vCPU's pCPUs and in all, "
                    "and the audit's findings. Runs until stopped.")
    host_options.add_host_arguments(parser)
    parser.add_argument(
        '--listen', metavar='ADDRESS:PORT', required=True,
        help='where to serve /metrics, e.g. 127.0.0.1:9733')
    parser.set_defaults(func=run)


def listen_address(value: str) -> tuple[str, int]:
    """``ADDRESS:PORT`` -> (address, port), or one clear sentence."""
    address, sep, port = value.rpartition(':')
    address = address.strip('[]')
    if not sep or not address or not port.isdigit() or not (
            0 < int(port) < 65536):
        raise exception.Invalid(
            reason='--listen=%r: expected ADDRESS:PORT with a port from 1 '
                   'to 65535, e.g. 127.0.0.1:9733' % value)
    return address, int(port)


def start(args: argparse.Namespace, conn: typing.Any | None = None,
          ) -> tuple[typing.Any, metrics.EmulatorThreadsCollector]:
    """Check the arguments, read the host once and start serving.

    :returns: the HTTP server (``shutdown()`` stops it) and the collector
    """
    address, port = listen_address(args.listen)
    cpu_shared_set = host_options.shared_set(args)
    host_options.check_local_uri(args)
    if conn is None:
        conn = libvirt_domains.open_connection(args.connect, read_only=True)
    collector = metrics.EmulatorThreadsCollector(
        lambda: snapshot.take_snapshot(conn, args.proc_root, args.sys_root),
        args.proc_root, cpu_shared_set)
    # A host that cannot be read fails here, once, rather than per scrape.
    collector.update()
    registry = prom_registry.CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        server, _thread = prometheus_client.start_http_server(
            port, address, registry)
    except OSError as exc:
        raise exception.HostInspectionFailed(
            source='--listen=%s' % args.listen,
            reason='cannot listen there: %s' % (exc.strerror or exc),
        ) from None
    return server, collector


def run(args: argparse.Namespace) -> int:
    server, _collector = start(args)
    stopped = threading.Event()

    def stop(_signum: int, _frame: types.FrameType | None) -> None:
        stopped.set()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    output.write('nova-emulator-threads exporter: serving '
                 'http://%s/metrics\n' % args.listen)
    output.flush()
    stopped.wait()
    server.shutdown()
    return 0
