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

"""Parsing XML that comes from outside: capabilities, domain definitions.

One parser for every reader of the project, so they all refuse the same
hostile input the same way: no entity expansion, no network, no DTD,
libxml2's default size and depth limits, and a cap on the document size.
"""

import typing
from collections.abc import Callable

from lxml import etree

from nova_emulator_threads import exception

#: The capabilities of the largest hosts and the biggest domain
#: definitions are a few hundred KiB; anything far bigger is not one.
MAX_XML_BYTES = 16 * 1024 * 1024
#: At most this many tags (``<``). The capabilities of a 64-cell host with
#: 1,024 CPUs and a large guest's domain have a few ten thousand; lxml
#: spends about 40 bytes per tag parsing a document made of nothing but
#: tags, which is what a 16 MiB document of junk elements costs.
MAX_XML_TAGS = 200_000


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True,
                           load_dtd=False, huge_tree=False,
                           remove_comments=True, remove_pis=True)


def parse_untrusted(
    text: object,
    invalid: Callable[[str], exception.EmulatorThreadsException],
) -> etree._Element:
    """Parse XML text (str or bytes) into its root element.

    :param text: the document
    :param invalid: builds the caller's exception from a reason, so that
        the message names the caller's source and kind of document
    :raises: whatever ``invalid`` returns, for every kind of bad input
    """
    if isinstance(text, str):
        try:
            # lxml refuses str input carrying an encoding declaration;
            # bytes are parsed the same way either way.
            data = text.encode('utf-8')
        except UnicodeEncodeError as exc:
            # Lone surrogates: not text any XML parser can read.
            raise invalid('not valid Unicode text (%s)' % exc.reason
                          ) from None
    elif isinstance(text, bytes):
        data = text
    else:
        raise invalid('expected XML text, got %s' % type(text).__name__)
    if len(data) > MAX_XML_BYTES:
        raise invalid('%d bytes is larger than the %d allowed'
                      % (len(data), MAX_XML_BYTES))
    tags = data.count(b'<')
    if tags > MAX_XML_TAGS:
        raise invalid('%d tags is more than the %d allowed'
                      % (tags, MAX_XML_TAGS))
    try:
        root = etree.fromstring(data, _parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else 'not XML'
        raise invalid('not well-formed XML (%s)' % first_line) from None
    if root is None:
        raise invalid('the document is empty')
    return typing.cast(etree._Element, root)
