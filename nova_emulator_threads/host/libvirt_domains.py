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


"""Guests as libvirt describes them: XML, Nova metadata and live pins.

Read through libvirt-python, the way ``virsh dumpxml``, ``virsh
vcpupin``, ``virsh emulatorpin`` and ``virsh iothreadinfo`` show them:

* the live domain XML (``XMLDesc(0)``) and, for a persistent domain,
  the definition it restarts from (``VIR_DOMAIN_XML_INACTIVE``): their
  ``<cputune>`` (read by ``virt.libvirt.cputune_reader.parse_cputune``), the
  ``<vcpu cpuset>`` default, the I/O threads and the ``nova:instance``
  metadata;
* the pins libvirt applies now: ``vcpuPinInfo``, ``emulatorPinInfo``,
  ``ioThreadInfo``. These are what QEMU's threads were told; ``procfs``
  says where they may actually run.

Nova (34) writes into ``<metadata>`` the flavor it built the guest from,
extra specs included (``nova:flavor/nova:extraSpecs``), and the image
properties (``nova:image/nova:properties``): enough to know the CPU and
emulator threads policies the guest was built for. Older releases left
out the extra specs; then the policy is unknown and is not checked.

``libvirt`` (libvirt-python) is imported when a connection is opened, so
the pure parts here (and everything built on them) work without it.
"""

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping

from lxml import etree

from nova_emulator_threads import cpuset
from nova_emulator_threads import exception
from nova_emulator_threads import xmlutils
from nova_emulator_threads.virt.libvirt import cputune
from nova_emulator_threads.virt.libvirt import cputune_reader

#: Nova's metadata namespace (``nova.virt.libvirt.config.NOVA_NS``); any
#: version below this prefix is accepted.
NOVA_NS = 'http://openstack.org/xmlns/libvirt/nova/1.1'
NOVA_NS_PREFIX = 'http://openstack.org/xmlns/libvirt/nova/'

#: libvirt error codes that mean "the domain went away while we looked":
#: VIR_ERR_NO_DOMAIN, VIR_ERR_OPERATION_INVALID ("domain is not running").
_GONE_CODES = (42, 55)
#: VIR_ERR_NO_SUPPORT, VIR_ERR_ARGUMENT_UNSUPPORTED: the driver lacks a call.
_UNSUPPORTED_CODES = (3, 74)


@dataclasses.dataclass(frozen=True)
class NovaMetadata:
    """The ``nova:instance`` element Nova's libvirt driver writes."""

    instance_name: str | None
    flavor_name: str | None
    vcpus: int | None
    memory_mb: int | None
    #: the flavor's extra specs; None when the metadata does not carry
    #: them (Nova before the extraSpecs element).
    extra_specs: Mapping[str, str] | None
    #: the image properties recorded with the guest.
    image_props: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class DomainConfig:
    """What one domain XML document says about thread placement."""

    #: ``<vcpu>``: the number of vCPUs.
    vcpus: int
    #: ``<vcpu cpuset=...>``: the default for vCPUs and emulator threads
    #: without a pin of their own; None when absent (any online CPU).
    vcpu_cpuset: frozenset[int] | None
    #: ids of the I/O threads (``<iothreads>``, ``<iothreadids>``).
    iothread_ids: tuple[int, ...]
    #: ``<cputune>``.
    cputune: cputune.CPUTune
    nova: NovaMetadata | None


@dataclasses.dataclass(frozen=True)
class Domain:
    """A guest as libvirt reports it."""

    name: str
    uuid: str
    active: bool
    persistent: bool
    #: the live XML (the definition, when the guest is not running).
    live: DomainConfig
    #: the persistent definition; None for a transient guest.
    config: DomainConfig | None
    #: vCPU -> pCPUs it may run on, as libvirt applies it now.
    vcpu_pins: Mapping[int, frozenset[int]]
    #: pCPUs the emulator threads may run on, as libvirt applies it now.
    emulator_pins: frozenset[int]
    #: I/O thread id -> pCPUs, as libvirt applies it now.
    iothread_pins: Mapping[int, frozenset[int]]

    @property
    def nova(self) -> NovaMetadata | None:
        return self.live.nova


# ---------------------------------------------------------------------------
# XML
# ---------------------------------------------------------------------------


def _invalid(source: str, reason: str) -> exception.InvalidDomainXML:
    return exception.InvalidDomainXML(source=source, reason=reason)


def _int_text(element: etree._Element | None, source: str,
              what: str) -> int | None:
    if element is None:
        return None
    text = (element.text or '').strip()
    if not text.isascii() or not text.isdigit():
        raise _invalid(source, '%s is %r; expected a whole number'
                       % (what, element.text))
    return int(text)


def _nova_metadata(root: etree._Element,
                   source: str) -> NovaMetadata | None:
    metadata = root.find('metadata')
    if metadata is None:
        return None
    instance = None
    for child in metadata:
        qname = etree.QName(child)
        if (qname.localname == 'instance' and qname.namespace and
                qname.namespace.startswith(NOVA_NS_PREFIX)):
            instance = child
            break
    if instance is None:
        return None
    ns = etree.QName(instance).namespace
    nsmap = {'nova': ns}

    def text(path: str) -> str | None:
        found = instance.find(path, nsmap)
        return found.text if found is not None else None

    flavor = instance.find('nova:flavor', nsmap)
    extra_specs: dict[str, str] | None = None
    if flavor is not None:
        specs = flavor.find('nova:extraSpecs', nsmap)
        if specs is not None:
            extra_specs = {
                spec.get('name', ''): spec.text or ''
                for spec in specs.findall('nova:extraSpec', nsmap)}
    image_props = {
        prop.get('name', ''): prop.text or ''
        for prop in instance.findall(
            'nova:image/nova:properties/nova:property', nsmap)}
    return NovaMetadata(
        instance_name=text('nova:name'),
        flavor_name=flavor.get('name') if flavor is not None else None,
        vcpus=_int_text(instance.find('nova:flavor/nova:vcpus', nsmap),
                        source, 'nova:vcpus'),
        memory_mb=_int_text(instance.find('nova:flavor/nova:memory', nsmap),
                            source, 'nova:memory'),
        extra_specs=extra_specs,
        image_props=image_props)


def _iothread_ids(root: etree._Element, source: str) -> tuple[int, ...]:
    ids = root.find('iothreadids')
    if ids is not None and len(ids):
        found = []
        for thread in ids.findall('iothread'):
            value = thread.get('id', '')
            if not value.isascii() or not value.isdigit():
                raise _invalid(source, '<iothread> has id=%r; expected a '
                               'whole number' % value)
            found.append(int(value))
        return tuple(sorted(found))
    count = _int_text(root.find('iothreads'), source, '<iothreads>') or 0
    return tuple(range(1, count + 1))


def parse_domain_xml(xml: str | bytes, source: str = 'string',
                     ) -> DomainConfig:
    """Read what a domain XML document says about thread placement.

    :param xml: the XML of ``virsh dumpxml`` / ``XMLDesc``
    :param source: where it came from, for error messages
    :raises: InvalidDomainXML naming the element at fault
    """
    root = xmlutils.parse_untrusted(
        xml, lambda reason: _invalid(source, reason))
    if root.tag != 'domain':
        raise _invalid(source, 'the root element is not <domain>')
    vcpu = root.find('vcpu')
    vcpus = _int_text(vcpu, source, '<vcpu>')
    if vcpu is None or not vcpus:
        raise _invalid(source, '<domain> has no <vcpu> count')
    vcpu_cpuset = None
    if vcpu.get('cpuset'):
        try:
            vcpu_cpuset = cpuset.parse_cpu_spec(vcpu.get('cpuset', ''),
                                                key='vcpu cpuset')
        except exception.InvalidCPUSpec as exc:
            raise _invalid(source, str(exc)) from None
    return DomainConfig(
        vcpus=vcpus, vcpu_cpuset=vcpu_cpuset,
        iothread_ids=_iothread_ids(root, source),
        cputune=cputune_reader.parse_cputune(root, source),
        nova=_nova_metadata(root, source))


# ---------------------------------------------------------------------------
# libvirt
# ---------------------------------------------------------------------------


@functools.cache
def libvirt_module() -> types.ModuleType:
    """Import libvirt-python, or say plainly that it is missing."""
    try:
        import libvirt
    except ImportError:
        raise exception.HostInspectionFailed(
            source='libvirt',
            reason='the libvirt Python binding is not installed (pip '
                   'install libvirt-python, which needs the libvirt '
                   'development headers and pkg-config)') from None
    # libvirt-python prints every error on stderr by default; we report
    # errors ourselves, once.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    module: types.ModuleType = libvirt
    return module


def is_gone(error: Exception) -> bool:
    """Whether a libvirt error means the domain has gone away."""
    get_code = getattr(error, 'get_error_code', None)
    return bool(get_code and get_code() in _GONE_CODES)


def error_text(error: Exception) -> str:
    """One line for a libvirt error."""
    message = getattr(error, 'get_error_message', lambda: None)()
    return ' '.join(str(message or error).split())


def open_connection(uri: str | None, read_only: bool = True) -> typing.Any:
    """Connect to libvirt.

    :param uri: the libvirt URI (None: libvirt's default, as virsh)
    :param read_only: audit needs only a read-only connection
    :raises: HostInspectionFailed naming the URI
    """
    libvirt = libvirt_module()
    try:
        if read_only:
            return libvirt.openReadOnly(uri)
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise exception.HostInspectionFailed(
            source='libvirt at %s' % (uri or 'the default URI'),
            reason=error_text(exc)) from None


def cpus_from_map(cpumap: typing.Iterable[bool]) -> frozenset[int]:
    """libvirt's CPU map (one bool per host CPU) -> CPU ids."""
    return frozenset(cpu for cpu, used in enumerate(cpumap) if used)


def map_from_cpus(cpus: frozenset[int], width: int) -> tuple[bool, ...]:
    """CPU ids -> libvirt's CPU map of ``width`` host CPUs."""
    return tuple(cpu in cpus for cpu in range(width))


def iothread_pins(dom: typing.Any, flags: int) -> dict[int, frozenset[int]]:
    """I/O thread id -> pCPUs; empty when the driver has no I/O threads."""
    libvirt = libvirt_module()
    try:
        info = dom.ioThreadInfo(flags)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in _UNSUPPORTED_CODES:
            return {}
        raise
    return {int(iothread): cpus_from_map(cpumap)
            for iothread, cpumap in info}


def read_domain(dom: typing.Any) -> Domain | None:
    """Read one domain.

    :param dom: a ``libvirt.virDomain``
    :raises: HostInspectionFailed on a libvirt error
    :returns: the domain, or None if it went away while being read
    """
    libvirt = libvirt_module()
    # virDomainGetName answers from the handle, without a call to libvirtd.
    name = dom.name()
    try:
        active = bool(dom.isActive())
        persistent = bool(dom.isPersistent())
        live_xml = dom.XMLDesc(0)
        config_xml = (dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                      if persistent else None)
        vcpu_pins = {vcpu: cpus_from_map(cpumap)
                     for vcpu, cpumap in enumerate(dom.vcpuPinInfo(0))}
        emulator = cpus_from_map(dom.emulatorPinInfo(0))
        iothreads = iothread_pins(dom, 0)
        uuid = dom.UUIDString().lower()
    except libvirt.libvirtError as exc:
        if is_gone(exc):
            return None
        raise exception.HostInspectionFailed(
            source='libvirt domain %s' % name,
            reason=error_text(exc)) from None
    source = 'of domain %s' % name
    return Domain(
        name=name, uuid=uuid, active=active, persistent=persistent,
        live=parse_domain_xml(live_xml, 'live XML ' + source),
        config=(parse_domain_xml(config_xml, 'persistent XML ' + source)
                if config_xml is not None else None),
        vcpu_pins=vcpu_pins, emulator_pins=emulator,
        iothread_pins=iothreads)


def list_domains(conn: typing.Any) -> tuple[Domain, ...]:
    """Every running domain of a connection, by name.

    Domains that stop while they are read are left out.
    """
    libvirt = libvirt_module()
    try:
        doms = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
    except libvirt.libvirtError as exc:
        raise exception.HostInspectionFailed(
            source='libvirt domain list', reason=error_text(exc)) from None
    found = [read_domain(dom) for dom in doms]
    return tuple(sorted((d for d in found if d is not None),
                        key=lambda d: d.name))


def lookup_domain(conn: typing.Any, name: str) -> typing.Any:
    """The ``virDomain`` called ``name`` (or with that UUID).

    :raises: DomainNotFound
    """
    libvirt = libvirt_module()
    for lookup in (conn.lookupByName, conn.lookupByUUIDString):
        try:
            return lookup(name)
        except libvirt.libvirtError as exc:
            # VIR_ERR_INVALID_ARG: the name is not a UUID.
            if exc.get_error_code() not in (*_GONE_CODES, 8):
                raise exception.HostInspectionFailed(
                    source='libvirt domain %s' % name,
                    reason=error_text(exc)) from None
    raise exception.DomainNotFound(domain=name)
