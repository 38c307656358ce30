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

"""``--config-file``: what the commands read from ``nova.conf``.

Every command takes ``--config-file`` (repeatable, later files win, as for
Nova's services) and reads, with oslo.config:

* ``[compute] cpu_dedicated_set`` and ``cpu_shared_set``, which fill
  ``--cpu-dedicated-set`` / ``--cpu-shared-set`` where the command has
  them and they were not given (explicit flags win);
* the ``[emulator_threads]`` group, as ``args.emulator_threads``.

The options are registered on a private ``ConfigOpts``, not on Nova's
global ``CONF``: the command reads the file, it does not run a service.
"""

import argparse
import typing

from oslo_config import cfg

from nova_emulator_threads import exception
from nova_emulator_threads.conf import opts
from nova_emulator_threads.objects import fields

#: The ``[compute]`` options the commands use (Nova's names and types).
COMPUTE_OPTS = (
    cfg.StrOpt('cpu_dedicated_set'),
    cfg.StrOpt('cpu_shared_set'),
)

#: ``[compute]`` option -> the command's attribute it fills.
FLAGS = {'cpu_dedicated_set': 'cpu_dedicated_set',
         'cpu_shared_set': 'cpu_shared_set'}


def add_shared_pool_affinity_argument(
        parser: argparse.ArgumentParser) -> None:
    """``--shared-pool-affinity``, for the commands that plan or audit."""
    parser.add_argument(
        '--shared-pool-affinity', choices=fields.SharedPoolAffinity.ALL,
        default=None,
        help="the host's [emulator_threads] shared_pool_affinity (default: "
             "from --config-file, else any, as Nova): with numa and a "
             "cpu_shared_set, a 'share' guest's emulator threads run on "
             "the shared CPUs of its NUMA nodes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--config-file', action='append', default=[], metavar='PATH',
        dest='config_files',
        help='a nova.conf to read [compute] cpu_dedicated_set, '
             'cpu_shared_set and [emulator_threads] from; repeat for '
             'several (later files win); flags given on the command line '
             'win over the files')


def load(paths: typing.Sequence[str]) -> tuple[dict[str, str | None],
                                                 dict[str, typing.Any]]:
    """Read ``[compute]`` and ``[emulator_threads]`` from ``paths``.

    :returns: the ``[compute]`` values and the ``[emulator_threads]`` ones
    :raises: exception.Invalid when a file is missing or malformed
    """
    conf = cfg.ConfigOpts()
    conf.register_opts(COMPUTE_OPTS, group='compute')
    groups = opts.list_opts()
    for group, group_opts in groups:
        conf.register_group(group)
        conf.register_opts(group_opts, group=group)
    try:
        conf(args=[], project='nova', default_config_files=list(paths),
             use_env=False, validate_default_values=True)
        compute = {opt.name: conf.compute[opt.name] for opt in COMPUTE_OPTS}
        emulator = {opt.dest: conf[group.name][opt.dest]
                    for group, group_opts in groups for opt in group_opts}
    except (cfg.Error, ValueError) as exc:
        raise exception.Invalid(
            reason='--config-file %s: %s' % (
                ', '.join(paths), ' '.join(str(exc).split()))) from None
    finally:
        conf.clear()
    return compute, emulator


def apply(args: argparse.Namespace) -> None:
    """Fill the flags not given from the files (explicit flags win)."""
    paths = getattr(args, 'config_files', None) or []
    args.emulator_threads = {}
    if not paths:
        return
    compute, args.emulator_threads = load(paths)
    for option, attribute in FLAGS.items():
        if (hasattr(args, attribute) and getattr(args, attribute) is None
                and compute[option] is not None):
            setattr(args, attribute, compute[option])


def emulator_threads_option(args: argparse.Namespace, name: str) -> typing.Any:
    """An ``[emulator_threads]`` option as the command sees it.

    The flag of the same name when it was given, else the value from
    ``--config-file``, else the option's default (Nova's behaviour).
    """
    flag = getattr(args, name, None)
    if flag is not None:
        return flag
    from_files = getattr(args, 'emulator_threads', None) or {}
    if name in from_files:
        return from_files[name]
    for _group, group_opts in opts.list_opts():
        for opt in group_opts:
            if opt.dest == name:
                return opt.default
    raise KeyError(name)
