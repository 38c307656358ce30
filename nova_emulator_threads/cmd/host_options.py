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

"""The options of the commands that read this host's guests and threads
(``audit``, ``pin``, ``measure``, ``exporter``): which libvirt daemon,
where procfs and sysfs are, and the host's ``cpu_shared_set``.
"""

import argparse
import urllib.parse

from nova_emulator_threads import cpuset
from nova_emulator_threads import exception


def add_host_arguments(parser: argparse.ArgumentParser,
                       cpu_shared_set: bool = True) -> None:
    """The options that say which host to read.

    :param cpu_shared_set: also ``--cpu-shared-set``, for the commands
        that check Nova's placement rules
    """
    parser.add_argument(
        '--connect', '-c', metavar='URI', default=None,
        help='libvirt URI of this host (default: libvirt\'s default, as '
             'virsh), e.g. qemu:///system')
    parser.add_argument(
        '--proc-root', metavar='DIR', default='/proc',
        help='where procfs is mounted (default: /proc)')
    parser.add_argument(
        '--sys-root', metavar='DIR', default='/sys',
        help='where sysfs is mounted (default: /sys)')
    if not cpu_shared_set:
        return
    parser.add_argument(
        '--cpu-shared-set', metavar='RANGE', default=None,
        help="the host's [compute] cpu_shared_set, to check Nova guests "
             "with emulator threads policy 'share' exactly")


def check_local_uri(args: argparse.Namespace) -> None:
    """Refuse a libvirt URI of another host.

    The audit reads thread affinities from this host's ``/proc`` and
    ``/sys``: with a remote daemon it would mix that host's guests with
    this host's threads.
    """
    uri = args.connect
    if uri and urllib.parse.urlsplit(uri).hostname:
        raise exception.Invalid(
            reason='--connect %r names host %r; the audit reads this '
                   "host's /proc and /sys, so run it on that host with a "
                   'local URI such as qemu:///system'
                   % (uri, urllib.parse.urlsplit(uri).hostname))


def shared_set(args: argparse.Namespace) -> frozenset[int] | None:
    if args.cpu_shared_set is None:
        return None
    return cpuset.parse_cpu_set_option(args.cpu_shared_set,
                                       key='--cpu-shared-set')
