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

"""JSON over HTTP to the cloud's own APIs on 127.0.0.1.

Standard library only: aio.py runs with the system's Python, before the
cloud's virtualenv exists.
"""

import json
import typing
import urllib.error
import urllib.request

from allinone import layout

# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


def http(method: str, url: str, body: typing.Any = None,
         token: str | None = None,
         headers: dict[str, str] | None = None,
         ) -> tuple[int, typing.Any, typing.Any]:
    """One request: (status, response headers, decoded JSON or None)."""
    data = None
    all_headers = {'Accept': 'application/json'}
    if isinstance(body, bytes):
        data = body
        all_headers['Content-Type'] = 'application/octet-stream'
    elif body is not None:
        data = json.dumps(body).encode()
        all_headers['Content-Type'] = 'application/json'
    if token:
        all_headers['X-Auth-Token'] = token
    all_headers.update(headers or {})
    # Only the cloud's own http://127.0.0.1 URLs come here.
    request = urllib.request.Request(  # noqa: S310
        url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(  # noqa: S310
                request, timeout=60) as response:
            status, reply, text = (response.status, response.headers,
                                   response.read())
    except urllib.error.HTTPError as exc:
        status, reply, text = exc.code, exc.headers, exc.read()
    try:
        decoded = json.loads(text) if text else None
    except ValueError:
        decoded = text.decode(errors='replace')
    return status, reply, decoded


def api(method: str, url: str, body: typing.Any = None,
        token: str | None = None, **headers: str) -> typing.Any:
    status, _reply, decoded = http(method, url, body, token, headers)
    if status >= 400:
        raise layout.Failed('%s %s: HTTP %d: %s' % (
            method, url, status, decoded))
    return decoded


def answers(url: str) -> bool:
    """Whether an API answers at all (any status below 500)."""
    status, _reply, _body = http('GET', url)
    return status < 500


def token(user: str, password: str, project: str) -> str:
    body = {'auth': {
        'identity': {'methods': ['password'], 'password': {'user': {
            'name': user, 'domain': {'id': 'default'},
            'password': password}}},
        'scope': {'project': {'name': project,
                              'domain': {'id': 'default'}}}}}
    status, reply, decoded = http(
        'POST', layout.URLS['keystone'] + '/v3/auth/tokens', body)
    if status != 201:
        raise layout.Failed('keystone refused a token for %s: HTTP %d: %s' % (
            user, status, decoded))
    return str(reply['X-Subject-Token'])
