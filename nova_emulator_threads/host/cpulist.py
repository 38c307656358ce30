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


"""CPU lists as the kernel writes them (``0-3,8-11``).

``/sys/devices/system/cpu/{online,isolated}``, ``Cpus_allowed_list`` in
``/proc/<pid>/status``, ``cpuset.cpus`` of a cgroup and the ``isolcpus=``
and ``nohz_full=`` boot parameters all use the kernel's own syntax
(``bitmap_parselist``), which is not Nova's: there is no ``^N``
exclusion, but a range may carry a stride (``0-15:2/4``: two CPUs of each
group of four) and ``N`` stands for the last CPU. The ids are capped at
``cpuset.MAX_CPU_ID`` like every other CPU set of this project.
"""

from nova_emulator_threads import cpuset
from nova_emulator_threads import exception


def _cpu_id(text: str, source: str, value: str, last: int | None) -> int:
    text = text.strip()
    if text == 'N' and last is not None:
        return last
    if not text.isascii() or not text.isdigit():
        raise exception.HostInspectionFailed(
            source=source,
            reason='%r is not a CPU list: %r is not a CPU id' % (value, text))
    cpu = int(text)
    if cpu > cpuset.MAX_CPU_ID:
        raise exception.HostInspectionFailed(
            source=source,
            reason='%r is not a CPU list: CPU id %d is above %d'
                   % (value, cpu, cpuset.MAX_CPU_ID))
    return cpu


def parse_cpu_list(value: str, source: str,
                   last: int | None = None) -> frozenset[int]:
    """Parse a kernel CPU list such as ``"0-3,8-11"`` or ``"1-7:2/4"``.

    :param value: the text (surrounding whitespace and a trailing newline
        are allowed; an empty list is the empty set)
    :param source: the file or parameter it came from, for errors
    :param last: the highest CPU id, which ``N`` stands for; ``N`` is
        rejected when it is not given
    :raises: HostInspectionFailed naming the source and the value
    :returns: the CPU ids
    """
    cpus: set[int] = set()
    for group in value.strip().split(','):
        group = group.strip()
        if not group:
            continue
        stride: tuple[int, int] | None = None
        if ':' in group:
            group, _, stride_text = group.partition(':')
            used_text, _, size_text = stride_text.partition('/')
            used = _cpu_id(used_text, source, value, None)
            size = _cpu_id(size_text, source, value, None)
            if not 0 < used <= size:
                raise exception.HostInspectionFailed(
                    source=source,
                    reason='%r is not a CPU list: stride %d/%d must use '
                           'between 1 and all CPUs of each group'
                           % (value, used, size))
            stride = (used, size)
        first_text, dash, last_text = group.partition('-')
        first = _cpu_id(first_text, source, value, last)
        end = _cpu_id(last_text, source, value, last) if dash else first
        if first > end:
            raise exception.HostInspectionFailed(
                source=source,
                reason='%r is not a CPU list: range %d-%d is reversed'
                       % (value, first, end))
        for cpu in range(first, end + 1):
            if stride is None or (cpu - first) % stride[1] < stride[0]:
                cpus.add(cpu)
    return frozenset(cpus)

