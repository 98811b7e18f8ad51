"""The GeoReport v2 handlers under ``/open311/v2/`` (``routes.ROUTES`` lists them).

Every path ends in ``.json`` or ``.xml`` (``{fmt}``); any other ending is a
404. Every error leaves as the specification's error body in the requested
format (``formats.error``): 400 for a missing or malformed argument (also
``jurisdiction_id`` not given), 403 for a missing or invalid ``api_key``, 404
for an unknown jurisdiction, service code, request or token. No error
echoes a submitted ``api_key``.

``jurisdiction_id`` is an organisation's id; the reads need it, ``POST
requests`` takes it from the client key (a different one given is a 404).
Reads need no key: a request's view carries nothing of the citizen's
contact details nor of the technician (``dispatch.open311.status``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from starlette.requests import Request
from starlette.responses import Response

from dispatch.errors import DispatchError, InvalidInput, NotFound, Unavailable
from dispatch.models import Organisation
from dispatch.open311.models import ClientKey
from dispatch.open311.service import WINDOW_S, Open311Service, Submission, client_for_secret
from dispatch.open311.status import STATUSES
from dispatch.open311.validation import parse_datetime

from ..auth import Role, authenticate, require
from ..errors import ApiError
from ..resources.common import read_body, runtime
from .formats import FORMATS, error, render
from .forms import FormError, parse_form, read_request_form
from .views import definition_view, discovery_view, service_view

Handler = Callable[[Request, str], Awaitable[Response]]

MAX_IDS = 1000


def georeport(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint for ``handler``: the format checked, errors as the spec's."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        fmt = request.path_params.get("fmt", "")
        if fmt not in FORMATS:
            return error("json", 404, "formats are .json and .xml")
        try:
            return await handler(request, fmt)
        except FormError as exc:
            return error(fmt, 400, str(exc))
        except ApiError as exc:
            return error(fmt, exc.status, exc.message)
        except NotFound as exc:
            return error(fmt, 404, f"{exc.kind} {exc.ident} not found")
        except Unavailable:
            return error(fmt, 503, "the service is unavailable; try again shortly")
        except (InvalidInput, DispatchError) as exc:
            return error(fmt, 400, exc.message)

    return endpoint


def _service(request: Request) -> Open311Service:
    return runtime(request).open311


async def _jurisdiction(request: Request) -> Organisation:
    jurisdiction = request.query_params.get("jurisdiction_id", "").strip()
    if not jurisdiction:
        raise ApiError(400, "missing", "jurisdiction_id was not provided")
    return await _service(request).jurisdiction(jurisdiction)


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@georeport
async def discovery(request: Request, fmt: str) -> Response:
    """``GET discovery``: the specification, the endpoint and both formats."""
    base = str(request.base_url).rstrip("/") + "/open311/v2"
    return render(fmt, "discovery", discovery_view(base))


@georeport
async def services(request: Request, fmt: str) -> Response:
    """``GET services``: the jurisdiction's services, all ``realtime``."""
    org = await _jurisdiction(request)
    found = await _service(request).services(org.id)
    return render(fmt, "services", [service_view(s) for s in found])


@georeport
async def service_definition(request: Request, fmt: str) -> Response:
    """``GET services/{service_code}``: the service's attributes."""
    org = await _jurisdiction(request)
    found = await _service(request).service(org.id, request.path_params["service_code"])
    return render(fmt, "service_definition", definition_view(found))


async def _client(request: Request, api_key: str) -> ClientKey:
    """The client key ``api_key`` is; 403 (never naming the key) otherwise."""
    if not api_key:
        raise ApiError(403, "forbidden", "api_key was not provided")
    rt = runtime(request)
    try:
        require(await authenticate(api_key, rt.service, rt.admin_token), Role.OPEN311)
    except ApiError:
        raise ApiError(403, "forbidden", "api_key is not a valid Open311 client key") from None
    client = await client_for_secret(rt.service.stores, api_key)
    if client is None:  # revoked between the two reads
        raise ApiError(403, "forbidden", "api_key is not a valid Open311 client key")
    return client


@georeport
async def post_request(request: Request, fmt: str) -> Response:
    """``POST requests`` (form, ``api_key``): a job is dispatched for it at once; 201."""
    body = await read_body(request)
    form = read_request_form(await parse_form(request.headers, body))
    client = await _client(request, form.api_key)
    if form.jurisdiction_id and form.jurisdiction_id != client.org_id:
        raise NotFound("jurisdiction", form.jurisdiction_id)
    if not form.service_code:
        raise ApiError(400, "missing", "service_code was not provided")
    lat, long = form.lat, form.long
    if lat is None or long is None:
        lat, long = await _geocode(request, form.address_string)
    o3 = _service(request)
    created = await o3.submit(
        client,
        Submission(
            service_code=form.service_code,
            lat=lat,
            long=long,
            description=form.description,
            address=form.address_string,
            address_id=form.address_id,
            zipcode=form.zipcode,
            media_url=form.media_url,
            attributes=form.attributes,
            listed=frozenset(form.listed),
            contact=form.contact,
        ),
    )
    answer = {
        "service_request_id": created.id,
        "token": created.token,
        "service_notice": "",
        "account_id": created.contact.account_id,
    }
    return render(fmt, "service_requests", [answer], 201)


async def _geocode(request: Request, address: str) -> tuple[float, float]:
    from .geocoding import GeocodeError

    if not address:
        raise ApiError(400, "missing", "lat and long, or address_string, were not provided")
    geocoder = runtime(request).geocoder
    if geocoder is None:
        raise ApiError(400, "no_geocoder", "this server geocodes no address: send lat and long")
    try:
        found = await geocoder.locate(address)
    except GeocodeError as exc:
        raise ApiError(400, "geocoder", f"{exc}; send lat and long") from None
    if found is None:
        raise ApiError(400, "not_located", "address_string could not be located")
    return found


def _window(request: Request) -> tuple[float, float]:
    """The ``requested_datetime`` window (inclusive): the spec's most recent 90 days by default."""
    query = request.query_params
    start_text, end_text = query.get("start_date", ""), query.get("end_date", "")
    start = parse_datetime(start_text, "start_date") if start_text else None
    end = parse_datetime(end_text, "end_date") if end_text else None
    if start is None:
        end = runtime(request).service.clock() if end is None else end
        start = end - WINDOW_S
    elif end is None:
        end = start + WINDOW_S
    if end < start:
        raise InvalidInput("end_date lies before start_date")
    if end - start > WINDOW_S:
        raise InvalidInput("start_date to end_date may not span more than 90 days")
    if end_text and end == int(end):  # a time to the second includes that whole second
        end += 0.999_999
    return start, end


@georeport
async def list_requests(request: Request, fmt: str) -> Response:
    """``GET requests``: by ``service_request_id`` list, or by codes, window and statuses."""
    org = await _jurisdiction(request)
    query = request.query_params
    o3 = _service(request)
    ids = _list(query.get("service_request_id", ""))
    if len(ids) > MAX_IDS:
        raise InvalidInput(f"at most {MAX_IDS} service_request_id values")
    if ids:
        views = await o3.find(org, ids=ids)
        return render(fmt, "service_requests", views)
    statuses = _list(query.get("status", "").lower())
    if any(s not in STATUSES for s in statuses):
        raise InvalidInput("status takes open and closed")
    codes = _list(query.get("service_code", ""))
    since, until = _window(request)
    views = await o3.find(
        org, codes=codes or None, since=since, until=until, statuses=statuses or None
    )
    return render(fmt, "service_requests", views)


@georeport
async def get_request(request: Request, fmt: str) -> Response:
    """``GET requests/{service_request_id}``: a list of the one request."""
    org = await _jurisdiction(request)
    o3 = _service(request)
    found = await o3.request(org.id, request.path_params["service_request_id"])
    return render(fmt, "service_requests", [await o3.view(org, found)])


@georeport
async def get_token(request: Request, fmt: str) -> Response:
    """``GET tokens/{token}``: the request id a token stands for."""
    org = await _jurisdiction(request)
    token = request.path_params["token"]
    found = await _service(request).by_token(org.id, token)
    return render(fmt, "tokens", [{"service_request_id": found.id, "token": found.token}])
