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

"""tools/bindep_packages.py: bindep.txt as install-deps.sh reads it."""

import contextlib
import importlib.util
import io
import pathlib

from tests.unit import base

TOOLS = pathlib.Path(__file__).resolve().parents[3] / 'tools'
_spec = importlib.util.spec_from_file_location(
    'bindep_packages', TOOLS / 'bindep_packages.py')
assert _spec is not None and _spec.loader is not None
bindep_packages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bindep_packages)

SAMPLE = '''
# a comment
everywhere
build-only [build]  # trailing comment
both [platform:dpkg build hypervisor]
rpm-only [platform:rpm build]
not-on-debian [!platform:dpkg hypervisor]
not-for-build [!build hypervisor]
'''


class BindepPackagesTestCase(base.TestCase):

    def test_profiles_and_platforms(self) -> None:
        self.assertEqual(['everywhere', 'build-only', 'both'],
                         bindep_packages.packages(SAMPLE, ['build']))
        self.assertEqual(['everywhere', 'both', 'not-for-build'],
                         bindep_packages.packages(SAMPLE, ['hypervisor']))
        # A negated profile that is chosen drops the line.
        self.assertEqual(['everywhere', 'build-only', 'both'],
                         bindep_packages.packages(
                             SAMPLE, ['build', 'hypervisor']))

    def test_unknown_profile_is_an_error(self) -> None:
        exc = self.assertRaises(bindep_packages.BindepError,
                                bindep_packages.packages, SAMPLE, ['bild'])
        self.assertEqual('unknown profile bild; bindep.txt has: build, '
                         'hypervisor', str(exc))

    def test_syntax_it_does_not_know_is_refused(self) -> None:
        exc = self.assertRaises(bindep_packages.BindepError,
                                bindep_packages.parse,
                                'ok\nlibvirt-dev >=9.0 [build]\n')
        self.assertIn('line 2', str(exc))

    def test_the_repository_file(self) -> None:
        # The profiles install-deps.sh's callers name: the venv bootstrap,
        # the hypervisor tier and the all-in-one cloud.
        text = (TOOLS.parent / 'bindep.txt').read_text()
        build = bindep_packages.packages(text, ['build'])
        hypervisor = bindep_packages.packages(text, ['hypervisor'])
        all_in_one = bindep_packages.packages(text, ['all-in-one'])
        self.assertEqual(['libvirt-dev', 'pkg-config'], build)
        self.assertIn('qemu-system-x86', hypervisor)
        self.assertLessEqual(set(build) | set(hypervisor), set(all_in_one))

    def test_main_prints_one_package_a_line(self) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(0, bindep_packages.main(['build']))
        self.assertEqual('libvirt-dev\npkg-config\n', out.getvalue())

    def test_main_unknown_profile_exits_2(self) -> None:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.assertEqual(2, bindep_packages.main(['bild']))
        self.assertIn('unknown profile bild', err.getvalue())
