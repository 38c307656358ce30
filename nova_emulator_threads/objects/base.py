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

"""Base classes of the emulator-threads versioned objects.

Our objects carry the names, fields and versions of Nova's, so that an
object converts to Nova's and back without losing anything. Two things
follow from that:

* oslo.versionedobjects keeps one registry per process, keyed by object
  name only, and a class registering under a name and version already
  there *replaces* the first one. Registered there, our ``NUMACell`` would
  replace Nova's inside nova-compute (or the other way round, depending on
  import order). :class:`EmulatorThreadsObjectRegistry` therefore keeps
  its own store, and :class:`EmulatorThreadsObject` looks classes up in it.
* The primitives differ from Nova's only in their keys' prefix and the
  namespace, so converting is a rewrite of the primitive tree
  (:meth:`EmulatorThreadsObject.to_nova_primitive`,
  :meth:`EmulatorThreadsObject.from_nova_primitive`); nothing imports Nova.
"""

import collections
from collections.abc import Callable, Collection
import typing
from typing import Any, Self

from oslo_utils import versionutils
from oslo_versionedobjects import base as ovo_base
from oslo_versionedobjects import exception as ovo_exception

from nova_emulator_threads import exception

#: Nova's ``NovaObject.OBJ_SERIAL_NAMESPACE`` and ``OBJ_PROJECT_NAMESPACE``.
NOVA_SERIAL_NAMESPACE = 'nova_object'
NOVA_PROJECT_NAMESPACE = 'nova'

_ObjClasses = collections.defaultdict[
    str, list[type[ovo_base.VersionedObject]]]

# The store behind EmulatorThreadsObjectRegistry: object name -> classes,
# newest version first (the order oslo's _register_class keeps).
_OBJ_CLASSES: _ObjClasses = collections.defaultdict(list)


class EmulatorThreadsObjectRegistry(ovo_base.VersionedObjectRegistry):
    """The registry of this project's objects, apart from oslo's global one.

    Register with ``@EmulatorThreadsObjectRegistry.register``; never with
    ``VersionedObjectRegistry.register``, which would shadow Nova's class
    of the same name (see the module docstring).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        self = object.__new__(cls)
        self._obj_classes = _OBJ_CLASSES
        return self


class EmulatorThreadsObject(ovo_base.VersionedObject):
    """Base class of every object of nova-emulator-threads."""

    OBJ_PROJECT_NAMESPACE = 'nova_emulator_threads'

    @classmethod
    def obj_class_from_name(
        cls, objname: str, objver: str,
    ) -> type[ovo_base.VersionedObject]:
        """Return the newest registered class compatible with ``objver``.

        oslo's implementation, but reading our registry: the global one
        holds Nova's classes under the same names.
        """
        classes = EmulatorThreadsObjectRegistry.obj_classes().get(objname)
        if not classes:
            raise ovo_exception.UnsupportedObjectError(objtype=objname)
        compatible = None
        for objclass in classes:
            if objclass.VERSION == objver:
                return objclass
            if (compatible is None and
                    versionutils.is_compatible(objver, objclass.VERSION)):
                compatible = objclass
        if compatible is not None:
            return compatible
        raise ovo_exception.IncompatibleObjectVersion(
            objname=objname, objver=objver, supported=classes[0].VERSION)

    def to_nova_primitive(
        self,
        target_version: str | None = None,
        version_manifest: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Return this object as a primitive of the Nova object it mirrors.

        ``nova.objects.<Name>.obj_from_primitive()`` accepts the result.
        ``target_version`` and ``version_manifest`` are passed on to
        ``obj_to_primitive`` to talk to an older Nova.
        """
        primitive = self.obj_to_primitive(
            target_version=target_version, version_manifest=version_manifest)
        nova_primitive: dict[str, Any] = _rewrite(
            primitive,
            (self.OBJ_SERIAL_NAMESPACE, self.OBJ_PROJECT_NAMESPACE),
            (NOVA_SERIAL_NAMESPACE, NOVA_PROJECT_NAMESPACE))
        return nova_primitive

    @classmethod
    def from_nova_primitive(cls, primitive: dict[str, Any]) -> Self:
        """Build this object from a Nova object's ``obj_to_primitive()``.

        :raises: ObjectConversionFailed if the primitive holds an object we
            do not mirror, a version newer than ours, or is not a ``cls``.
        """
        if (not isinstance(primitive, dict) or
                f'{NOVA_SERIAL_NAMESPACE}.name' not in primitive):
            raise exception.ObjectConversionFailed(
                objtype=f'this {type(primitive).__name__}',
                reason=(f"it has no '{NOVA_SERIAL_NAMESPACE}.name' key: it "
                        "is not a Nova object's obj_to_primitive()"))
        ours = _rewrite(
            primitive,
            (NOVA_SERIAL_NAMESPACE, NOVA_PROJECT_NAMESPACE),
            (cls.OBJ_SERIAL_NAMESPACE, cls.OBJ_PROJECT_NAMESPACE))
        name = ours[cls._obj_primitive_key('name')]
        objtype = f"nova.{name} {ours[cls._obj_primitive_key('version')]}"
        try:
            obj = cls.obj_from_primitive(ours)
        except ovo_exception.IncompatibleObjectVersion as e:
            # The offending object may be nested: name it.
            raise exception.ObjectConversionFailed(
                objtype=objtype,
                reason=(f"it holds a {e.kwargs['objname']} "
                        f"{e.kwargs['objver']}, and this release of "
                        'nova-emulator-threads knows '
                        f"{e.kwargs['objname']} up to version "
                        f"{e.kwargs['supported']}")) from e
        except (ovo_exception.VersionedObjectsException, ValueError) as e:
            raise exception.ObjectConversionFailed(
                objtype=objtype, reason=str(e).rstrip('.')) from e
        if not isinstance(obj, cls):
            raise exception.ObjectConversionFailed(
                objtype=objtype, reason=f'a {cls.obj_name()} was expected')
        return obj


def _rewrite(
    value: Any, source: tuple[str, str], target: tuple[str, str],
) -> Any:
    """Copy a primitive tree, moving every object from source to target.

    ``source`` and ``target`` are (serial namespace, project namespace)
    pairs. An object is a dict holding ``<serial namespace>.name``; dicts
    without it (``DictOfIntegersField`` values) and lists are walked, other
    values are copied as they are.
    """
    src_serial, src_project = source
    dst_serial, dst_project = target
    if isinstance(value, dict):
        if f'{src_serial}.name' not in value:
            if f'{dst_serial}.name' in value:
                raise exception.ObjectConversionFailed(
                    objtype=(f"{value.get(f'{dst_serial}.namespace')}."
                             f"{value[f'{dst_serial}.name']}"),
                    reason=(f'it is nested in a tree of {src_project} '
                            'objects, and the objects of two projects cannot '
                            'be mixed'))
            return {k: _rewrite(v, source, target) for k, v in value.items()}
        name = value[f'{src_serial}.name']
        namespace = value[f'{src_serial}.namespace']
        if namespace != src_project:
            raise exception.ObjectConversionFailed(
                objtype=f'{namespace}.{name}',
                reason=f'only {src_project} objects can be converted here')
        if name not in EmulatorThreadsObjectRegistry.obj_classes():
            raise exception.ObjectConversionFailed(
                objtype=f'{namespace}.{name}',
                reason='nova-emulator-threads has no counterpart of it')
        prefix = f'{src_serial}.'
        converted: dict[str, Any] = {}
        for key, item in value.items():
            if not key.startswith(prefix):
                converted[key] = item
                continue
            field = key[len(prefix):]
            if field == 'namespace':
                item = dst_project
            elif field == 'data':
                item = {k: _rewrite(v, source, target)
                        for k, v in item.items()}
            elif field == 'changes':
                item = list(item)
            converted[f'{dst_serial}.{field}'] = item
        return converted
    if isinstance(value, (list, tuple)):
        return type(value)(_rewrite(v, source, target) for v in value)
    return value


class EphemeralObject:
    """Mix-in: fields with a ``default`` are set when the object is built.

    Nova's ``NovaEphemeralObject`` for objects that are blobs rather than
    database rows (``InstanceNUMACell``). Mirrored so that an object built
    here holds the same fields as the same object built by Nova, and the
    two compare equal after a conversion.
    """

    obj_set_defaults: Callable[..., None]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.obj_set_defaults()


def all_things_equal(obj_a: ovo_base.VersionedObject, obj_b: object) -> bool:
    """Whether two objects hold the same fields with equal values.

    Nova's helper of the same name, plus a check of the object name. Unlike
    oslo's ``ComparableVersionedObject`` (which os-vif uses) it ignores
    change tracking: that compares ``obj_to_primitive()``, whose
    ``changes`` list makes an object built from keyword arguments differ
    from the same data after ``obj_reset_changes()`` or a round trip.
    """
    if not isinstance(obj_b, ovo_base.VersionedObject):
        return False
    if obj_a.obj_name() != obj_b.obj_name():
        return False
    for name in obj_a.fields:
        set_a = obj_a.obj_attr_is_set(name)
        set_b = obj_b.obj_attr_is_set(name)
        if set_a != set_b:
            return False
        if set_a and getattr(obj_a, name) != getattr(obj_b, name):
            return False
    return True


class ComparableObject:
    """Mix-in: ``==`` compares the data (:func:`all_things_equal`).

    Objects are mutable, so like Nova's they are not hashable.
    """

    def __eq__(self, other: object) -> bool:
        return all_things_equal(
            typing.cast(ovo_base.VersionedObject, self), other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]


def raise_on_too_new_values(
    version: tuple[int, ...],
    primitive: dict[str, Any],
    field: str,
    new_values: Collection[object],
) -> None:
    """Refuse a downgrade when ``field`` holds a value added after it.

    Nova's helper of the same name, with the same error.
    """
    value = primitive.get(field)
    if value in new_values:
        raise ovo_exception.ObjectActionError(
            action='obj_make_compatible',
            reason=f'{field}={value} not supported in version {version}')
