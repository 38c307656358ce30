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

"""What a compute host shows of a server: from its libvirtd and /proc.

Tempest's own clients talk to the cloud's APIs; this one looks at the
host itself, as an operator would: the guest's libvirt definition (the
``<cputune>`` Nova wrote) and ``nova-emulator-threads audit``, which
reads every thread's real affinity from /proc.
"""

import json
import subprocess

from nova_emulator_threads.host import libvirt_domains


class AuditFailed(Exception):
    """The audit could not inspect the host (its exit status 2)."""


class ComputeHostClient:
    """One compute host, through the libvirt URI of its libvirtd."""

    def __init__(self, host, uri, audit_command):
        self.host = host
        self.uri = uri
        self.audit_command = audit_command

    def domain(self, server_id):
        """The guest of a server, as libvirt reports it now.

        :returns: a ``nova_emulator_threads.host.libvirt_domains.Domain``
        :raises: DomainNotFound when the host has no such guest
        """
        conn = libvirt_domains.open_connection(self.uri)
        try:
            return libvirt_domains.read_domain(
                libvirt_domains.lookup_domain(conn, server_id))
        finally:
            conn.close()

    def domain_names(self):
        """Every guest libvirt knows on this host, running or not."""
        conn = libvirt_domains.open_connection(self.uri)
        try:
            return sorted(dom.name() for dom in conn.listAllDomains(0))
        finally:
            conn.close()

    def domains(self):
        """Every running guest of this host, as libvirt reports it now.

        :returns: ``nova_emulator_threads.host.libvirt_domains.Domain``
            objects
        """
        conn = libvirt_domains.open_connection(self.uri)
        try:
            return libvirt_domains.list_domains(conn)
        finally:
            conn.close()

    def audit(self, cpu_shared_set=None):
        """Run ``nova-emulator-threads audit --format json``.

        :returns: (exit status, the JSON report); 0 clean, 1 findings
        :raises: AuditFailed on any other exit status
        """
        argv = [self.audit_command, 'audit', '--connect', self.uri,
                '--format', 'json']
        if cpu_shared_set:
            argv += ['--cpu-shared-set', cpu_shared_set]
        # The command comes from tempest's configuration, not from input.
        done = subprocess.run(argv, capture_output=True,  # noqa: S603
                              text=True, check=False)
        if done.returncode not in (0, 1):
            raise AuditFailed('%s exited %d: %s' % (
                ' '.join(argv), done.returncode, done.stderr.strip()))
        return done.returncode, json.loads(done.stdout)
