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

"""Read a running guest's ``<cputune>`` back from libvirt's domain XML.

``parse_cputune`` gives the ``cputune.CPUTune`` that
``cputune.cputune_from_topology`` builds, so the operator audit can
compare what libvirt applies with what Nova's driver would write. The XML
comes from a live domain, so it is read as untrusted: every element and
value at fault is named in one sentence (``InvalidDomainXML``).
"""

from lxml import etree

from nova_emulator_threads import cpuset
from nova_emulator_threads import exception
from nova_emulator_threads import xmlutils
from nova_emulator_threads.virt.libvirt import bandwidth
from nova_emulator_threads.virt.libvirt import cputune

#: Schedulers libvirt's ``<vcpusched>`` and ``<iothreadsched>`` accept.
SCHEDULERS = ('other', 'batch', 'idle', 'fifo', 'rr')


def _invalid(source: str, reason: str) -> exception.InvalidDomainXML:
    return exception.InvalidDomainXML(source=source, reason=reason)


def _int_attr(element: etree._Element, name: str, source: str,
              minimum: int = 0) -> int:
    value = element.get(name)
    if value is None:
        raise _invalid(source, '<%s> has no %s attribute'
                       % (element.tag, name))
    text = value.strip()
    if not text.isascii() or not text.isdigit() or int(text) < minimum:
        raise _invalid(source, '<%s> has %s=%r; expected an integer of at '
                       'least %d' % (element.tag, name, value, minimum))
    return int(text)


def _int_text(element: etree._Element, source: str) -> int:
    text = (element.text or '').strip()
    # libvirt writes a negative quota (-1) for "no cap".
    digits = text[1:] if text.startswith('-') else text
    if not digits.isascii() or not digits.isdigit():
        raise _invalid(source, '<%s> holds %r; expected an integer'
                       % (element.tag, element.text))
    return int(text)


def _cpus_attr(element: etree._Element, name: str,
               source: str) -> frozenset[int]:
    value = element.get(name)
    if value is None:
        raise _invalid(source, '<%s> has no %s attribute'
                       % (element.tag, name))
    try:
        cpus = cpuset.parse_cpu_spec(value, key=name)
    except exception.InvalidCPUSpec as exc:
        raise _invalid(source, '<%s> %s' % (element.tag, exc)) from exc
    if not cpus:
        raise _invalid(source, '<%s> has %s=%r, which names no CPU'
                       % (element.tag, name, value))
    return cpus


def _root(xml: str | bytes | etree._Element,
          source: str) -> etree._Element:
    if isinstance(xml, etree._Element):
        return xml
    return xmlutils.parse_untrusted(
        xml, lambda reason: _invalid(source, reason))


def parse_cputune(xml: str | bytes | etree._Element,
                  source: str = 'string') -> cputune.CPUTune:
    """Read thread placement from a ``<domain>`` or ``<cputune>``.

    :param xml: libvirt domain XML (``virsh dumpxml``, ``XMLDesc``), or
        just its ``<cputune>`` element, as text or as an lxml element
    :param source: where the XML came from, for error messages
    :raises: InvalidDomainXML naming the element and value at fault
    :returns: the placement; an empty ``CPUTune`` when a domain has no
        ``<cputune>``
    """
    tune = _find_cputune(_root(xml, source), source)
    if tune is None:
        return cputune.CPUTune()
    vcpupins: dict[int, frozenset[int]] = {}
    iothreadpins: dict[int, frozenset[int]] = {}
    emulatorpin: frozenset[int] | None = None
    scheds: list[cputune.VCPUSched] = []
    cfs: dict[str, int] = {}
    # Naming the tags also skips comments and unresolved entities.
    for child in tune.iterchildren('vcpupin', 'emulatorpin', 'iothreadpin',
                                   'vcpusched', 'emulator_period',
                                   'emulator_quota'):
        if child.tag in ('emulator_period', 'emulator_quota'):
            cfs[child.tag] = _int_text(child, source)
        elif child.tag == 'vcpupin':
            vcpu = _int_attr(child, 'vcpu', source)
            if vcpu in vcpupins:
                raise _invalid(source, 'vCPU %d has more than one '
                               '<vcpupin>' % vcpu)
            vcpupins[vcpu] = _cpus_attr(child, 'cpuset', source)
        elif child.tag == 'emulatorpin':
            if emulatorpin is not None:
                raise _invalid(source, '<cputune> has more than one '
                               '<emulatorpin>')
            emulatorpin = _cpus_attr(child, 'cpuset', source)
        elif child.tag == 'iothreadpin':
            iothread = _int_attr(child, 'iothread', source, minimum=1)
            if iothread in iothreadpins:
                raise _invalid(source, 'I/O thread %d has more than one '
                               '<iothreadpin>' % iothread)
            iothreadpins[iothread] = _cpus_attr(child, 'cpuset', source)
        else:
            scheds.append(_vcpusched(child, source))
    return cputune.CPUTune(vcpupins=vcpupins, emulatorpin=emulatorpin,
                           iothreadpins=iothreadpins, vcpusched=tuple(scheds),
                           emulator_bandwidth=_emulator_bandwidth(cfs))


def _find_cputune(root: etree._Element,
                  source: str) -> etree._Element | None:
    """The ``<cputune>`` element: the root, or the domain's one (None)."""
    if root.tag == 'cputune':
        return root
    if root.tag != 'domain':
        raise _invalid(source, 'the root element is <%s>; expected <domain> '
                       'or <cputune>' % root.tag)
    found = root.findall('cputune')
    if len(found) > 1:
        raise _invalid(source, '<domain> has %d <cputune> elements; '
                       'libvirt allows one' % len(found))
    return found[0] if found else None


def _vcpusched(child: etree._Element, source: str) -> cputune.VCPUSched:
    scheduler = child.get('scheduler')
    if scheduler not in SCHEDULERS:
        raise _invalid(source, '<vcpusched> has scheduler=%r; '
                       'expected one of %s'
                       % (scheduler, ', '.join(SCHEDULERS)))
    priority = (_int_attr(child, 'priority', source)
                if child.get('priority') is not None else None)
    return cputune.VCPUSched(vcpus=_cpus_attr(child, 'vcpus', source),
                             scheduler=scheduler, priority=priority)


def _emulator_bandwidth(
    cfs: dict[str, int],
) -> bandwidth.EmulatorBandwidth | None:
    """``<emulator_period>`` and ``<emulator_quota>``, when they cap."""
    if cfs.get('emulator_quota', -1) <= 0:
        # A quota of -1 (or none) is no cap.
        return None
    # Without <emulator_period> libvirt keeps the kernel's period.
    return bandwidth.EmulatorBandwidth(
        period=cfs.get('emulator_period', bandwidth.EMULATOR_PERIOD_US),
        quota=cfs['emulator_quota'])
