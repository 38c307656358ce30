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

"""Read Nova's topology objects into the engine's dataclasses.

The engine (``virt/hardware.py``) works on the frozen dataclasses of
``virt/topology.py``; nova-scheduler and nova-compute hand us Nova's
``NUMATopology`` (a host) and ``InstanceNUMATopology`` (a guest). These
readers are the edge between the two; they only read attributes, so they
need no Nova import.

What the two sides do not share:

* ``HostTopology.cpu_shared_set`` is configuration, not part of Nova's
  ``NUMATopology``: :func:`host_from_object` takes it as an argument.
* ``NUMACell.network_metadata`` (physnet affinity) is not used by the
  engine: :func:`host_from_object` ignores it.
* ``InstanceTopology.realtime_cpus`` (``hw:cpu_realtime_mask``) is not
  part of Nova's ``InstanceNUMATopology`` either, which reads it from the
  flavor: :func:`instance_from_object` takes it as an argument.
* ``InstanceNUMACell.cpu_topology`` is unused by the engine.
"""

from typing import Any

from oslo_versionedobjects import base as ovo_base

from nova_emulator_threads import exception
from nova_emulator_threads.virt import topology

__all__ = [
    'host_from_object',
    'host_view_of_object',
    'instance_from_object',
]

_UNSET = object()


def _field(obj: ovo_base.VersionedObject, name: str,
           default: Any = _UNSET) -> Any:
    """Return a field; ``default`` if unset, or fail with one sentence.

    Objects from older peers lack the fields added since; reading one
    would raise oslo's bare NotImplementedError from ``obj_load_attr``.
    """
    if obj.obj_attr_is_set(name):
        return getattr(obj, name)
    if default is _UNSET:
        raise exception.ObjectConversionFailed(
            objtype=f'{obj.obj_name()} {obj.VERSION}',
            reason=f'its required field {name!r} is not set')
    return default


def _ints(values: Any) -> frozenset[int]:
    return frozenset(values) if values is not None else frozenset()


def host_from_object(
    host: ovo_base.VersionedObject,
    cpu_shared_set: frozenset[int] = frozenset(),
) -> topology.HostTopology:
    """Return the engine's view of a ``NUMATopology``.

    :param host: the host's topology object.
    :param cpu_shared_set: ``[compute] cpu_shared_set`` as configured.
    :returns: a ``HostTopology``; fields an older object lacks (``pcpuset``
        before 1.4, ``socket`` before 1.5...) take their defaults.
    :raises: ObjectConversionFailed if a cell lacks ``id``, ``cpuset`` or
        ``memory``.
    """
    cells = []
    for cell in _field(host, 'cells'):
        cells.append(topology.HostCell(
            id=_field(cell, 'id'),
            cpuset=frozenset(_field(cell, 'cpuset')),
            pcpuset=_ints(_field(cell, 'pcpuset', None)),
            memory=_field(cell, 'memory'),
            siblings=tuple(frozenset(sibling_set) for sibling_set
                           in _field(cell, 'siblings', ())),
            mempages=tuple(
                topology.MemPages(
                    size_kb=_field(pages, 'size_kb'),
                    total=_field(pages, 'total'),
                    used=_field(pages, 'used', 0),
                    reserved=_field(pages, 'reserved', 0))
                for pages in _field(cell, 'mempages', ())),
            pinned_cpus=_ints(_field(cell, 'pinned_cpus', None)),
            cpu_usage=_field(cell, 'cpu_usage', 0),
            memory_usage=_field(cell, 'memory_usage', 0),
            socket=_field(cell, 'socket', None)))
    return topology.HostTopology(
        cells=tuple(cells), cpu_shared_set=frozenset(cpu_shared_set))


def instance_from_object(
    instance: ovo_base.VersionedObject,
    realtime_cpus: frozenset[int] = frozenset(),
) -> topology.InstanceTopology:
    """Return the engine's view of an ``InstanceNUMATopology``.

    :param instance: the guest's topology object.
    :param realtime_cpus: the vCPUs of ``hw:cpu_realtime_mask``.
    :returns: an ``InstanceTopology``; ``pcpuset`` defaults to empty for a
        cell before 1.5.
    :raises: ObjectConversionFailed if a cell lacks ``id``, ``cpuset`` or
        ``memory``.
    """
    cells = []
    for cell in _field(instance, 'cells'):
        reserved = _field(cell, 'cpuset_reserved', None)
        cells.append(topology.InstanceCell(
            id=_field(cell, 'id'),
            cpuset=frozenset(_field(cell, 'cpuset')),
            pcpuset=_ints(_field(cell, 'pcpuset', None)),
            memory=_field(cell, 'memory'),
            pagesize=_field(cell, 'pagesize', None),
            cpu_policy=_field(cell, 'cpu_policy', None),
            cpu_thread_policy=_field(cell, 'cpu_thread_policy', None),
            cpu_pinning=(cell.cpu_pinning
                         if cell.obj_attr_is_set('cpu_pinning_raw')
                         else None),
            cpuset_reserved=(None if reserved is None
                             else frozenset(reserved))))
    return topology.InstanceTopology(
        cells=tuple(cells),
        emulator_threads_policy=_field(
            instance, 'emulator_threads_policy', None),
        realtime_cpus=frozenset(realtime_cpus))


# A versioned object keeps each set field's value in the attribute
# '_obj_<name>' (oslo.versionedobjects' get_attrname); reading those
# attributes skips the property, obj_attr_is_set and lazy-load machinery,
# which is most of what a conversion costs. (Not through vars(obj): that
# would give every object a dict of its own, one more object for the
# garbage collector to walk for as long as the object lives.)


def _stored(obj: ovo_base.VersionedObject, name: str,
            default: Any = None) -> Any:
    return getattr(obj, '_obj_' + name, default)


def _required(obj: ovo_base.VersionedObject, name: str) -> Any:
    value = getattr(obj, '_obj_' + name, _UNSET)
    if value is _UNSET:
        raise exception.ObjectConversionFailed(
            objtype=f'{obj.obj_name()} {obj.VERSION}',
            reason=f'its required field {name!r} is not set')
    return value


# Hosts of one hardware and configuration mostly have equal page counts:
# the views share one tuple of them. A scheduler keeps a view of every
# host, and Python's garbage collector walks every container object that
# stays alive (frozen dataclasses are such objects): fewer of them make
# its full collections shorter. Bounded; setdefault is one operation
# under the GIL, so threads are safe.
_PAGES: dict[tuple[tuple[int, int, int, int], ...],
             tuple[topology.MemPages, ...]] = {}
_PAGES_MAX = 65536


def _pages(counts: tuple[tuple[int, int, int, int], ...],
           ) -> tuple[topology.MemPages, ...]:
    pages = _PAGES.get(counts)
    if pages is None:
        if len(_PAGES) >= _PAGES_MAX:
            _PAGES.clear()
        pages = _PAGES.setdefault(counts, tuple(
            topology.MemPages(*count) for count in counts))
    return pages


def host_view_of_object(
    host: ovo_base.VersionedObject,
) -> topology.HostTopology:
    """Return the engine's view of a ``NUMATopology``, sharing its sets.

    :func:`host_from_object` for a reader that holds the view no longer
    than the object stays unchanged, as nova-scheduler does: its host
    states replace a host's topology object when the host changes, never
    change it in place. The view's cells hold the object's own CPU and
    sibling sets, not copies, so it costs a fraction of a conversion and
    no memory for the sets, and iterates them exactly as Nova's fitter
    does.

    :param host: the host's topology object.
    :returns: a ``HostTopology`` without ``cpu_shared_set``.
    :raises: ObjectConversionFailed if a cell lacks ``id``, ``cpuset`` or
        ``memory``.
    """
    empty: frozenset[int] = frozenset()
    cells = []
    for cell in _required(host, 'cells'):
        counts = tuple([
            (_required(page, 'size_kb'), _required(page, 'total'),
             _stored(page, 'used', 0), _stored(page, 'reserved', 0))
            for page in _stored(cell, 'mempages', ())])
        pcpuset = _stored(cell, 'pcpuset')
        pinned = _stored(cell, 'pinned_cpus')
        cells.append(topology.HostCell(
            _required(cell, 'id'),
            _required(cell, 'cpuset'),
            empty if pcpuset is None else pcpuset,
            _required(cell, 'memory'),
            tuple(_stored(cell, 'siblings', ())),
            _pages(counts),
            empty if pinned is None else pinned,
            _stored(cell, 'cpu_usage', 0),
            _stored(cell, 'memory_usage', 0),
            _stored(cell, 'socket')))
    return topology.HostTopology(tuple(cells))
