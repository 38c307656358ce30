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

"""Exceptions of nova-emulator-threads.

Every exception carries one sentence that names the offending key, the
value it had and what is allowed, so that the API can return it as an
HTTP 400 body and the CLI can print it as its only line of output.
"""

from typing import Any


class EmulatorThreadsException(Exception):
    """Base class: ``msg_fmt`` is formatted with the keyword arguments."""

    msg_fmt = 'An unknown error occurred.'

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        self.kwargs = kwargs
        if message is None:
            message = self.msg_fmt % kwargs
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class Invalid(EmulatorThreadsException):
    """Bad input: a user or operator must change what they asked for."""

    msg_fmt = 'Invalid input: %(reason)s'


class InvalidCPUSpec(Invalid):
    """A CPU range string (``"2-15,^8"``) that cannot be parsed."""

    msg_fmt = ("Invalid CPU set %(key)s=%(value)r: %(reason)s; expected "
               "comma-separated CPU ids, ranges 'A-B' and exclusions '^N', "
               "with ids from 0 to %(maximum)d.")


class InvalidExtraSpec(Invalid):
    """A flavor extra spec or image property with a value not allowed."""

    msg_fmt = ("Invalid %(key)s=%(value)r: %(allowed)s.")


class ConflictingExtraSpecs(Invalid):
    """Two spellings of one setting that disagree."""

    msg_fmt = ("Conflicting %(key)s=%(value)r and %(other_key)s="
               "%(other_value)r: %(allowed)s.")


class InvalidHostCapabilities(Invalid):
    """Host capabilities XML that cannot be read."""

    msg_fmt = ("Invalid host capabilities %(source)s: %(reason)s.")


class HostInspectionFailed(EmulatorThreadsException):
    """A live-host source (procfs, sysfs, cgroup, libvirt) failed."""

    msg_fmt = 'Cannot read %(source)s: %(reason)s.'


class CPUPinningConflict(EmulatorThreadsException):
    """Claiming a pCPU twice, or freeing one that was not claimed."""

    msg_fmt = 'Cannot update pCPUs %(cpus)s on host cell %(cell)d: %(reason)s.'


class InvalidDomainXML(Invalid):
    """Libvirt domain XML (or a ``<cputune>`` element) that cannot be read."""

    msg_fmt = 'Invalid libvirt domain XML %(source)s: %(reason)s.'


class InvalidInstanceTopology(Invalid):
    """A guest topology libvirt cannot be told to run as asked."""

    msg_fmt = 'Cannot build the libvirt CPU tuning of the guest: %(reason)s.'


class ObjectConversionFailed(EmulatorThreadsException):
    """A versioned object that cannot be converted without losing data."""

    msg_fmt = 'Cannot convert %(objtype)s: %(reason)s.'


class DomainNotFound(EmulatorThreadsException):
    """A libvirt domain named on the command line does not exist."""

    msg_fmt = ('Domain %(domain)r not found: expected the name or UUID of a '
               'libvirt domain on this host.')


class InvalidEmulatorCPUSet(Invalid):
    """An emulator thread CPU set that ``pin`` refuses to apply."""

    msg_fmt = ('Cannot pin the emulator threads of %(domain)s to CPUSET='
               '%(cpuset)r: %(reason)s.')


class PinFailed(EmulatorThreadsException):
    """libvirt failed while ``pin`` changed a guest; the state is reported."""

    msg_fmt = ('Pinning the emulator threads of %(domain)s failed: '
               '%(reason)s.')
