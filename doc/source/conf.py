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

"""Sphinx configuration of the documentation and the man page.

The build is offline (no intersphinx) and quick: ``make docs`` and, with
warnings as errors, ``make pep8``.
"""

extensions = [
    'openstackdocstheme',
    # The [emulator_threads] option reference (.. show-options::), read
    # from the package's oslo.config.opts entry point.
    'oslo_config.sphinxext',
    # The command's options and subcommands, read from its argparse parser.
    'sphinxcontrib.autoprogram',
    'sphinx.ext.autodoc',
]

project = 'nova-emulator-threads'
copyright = '2026, nova-emulator-threads developers'
source_suffix = '.rst'
master_doc = 'index'
exclude_patterns = ['_build']

# openstackdocstheme: the links of the page footer and the bug link.
openstackdocs_repo_name = 'openstack/nova-emulator-threads'
openstackdocs_bug_project = 'nova-emulator-threads'
openstackdocs_bug_tag = 'doc'
openstackdocs_auto_name = False
html_theme = 'openstackdocs'
pygments_style = 'native'

# Type hints in the signatures, not repeated in the descriptions.
autodoc_typehints = 'signature'
autodoc_member_order = 'bysource'

# make man: nova-emulator-threads(1).
man_pages = [
    ('cli/nova-emulator-threads', 'nova-emulator-threads',
     'plan, audit and pin the emulator threads of Nova guests',
     ['nova-emulator-threads developers'], 1),
]
