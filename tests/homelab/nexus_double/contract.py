"""Sonatype's REST contract, as the generated `nexus_api_client` models state it.

Request bodies are validated strictly against the request model of their endpoint; what
fails becomes the 400 body Nexus itself would send. Every JSON response is validated
against its response model before it leaves the double: a failure there is a bug in the
double, raised as `ContractViolation` (the server answers 500 and logs it).

How Nexus words its 400s (read from sonatype/nexus-public):
- Jackson cannot bind a value (wrong JSON type): `[{"id": "<field>", "message": ...}]`
  (JsonMappingExceptionMapper); unparsable JSON: `{"id": "*", "message": "Could not
  process the input: ..."}` (JsonProcessingExceptionMapper, a single object);
- bean validation on the request parameter: `[{"id": "PARAMETER <leaf>", ...}]`
  (ResteasyViolationExceptionMapper); unknown JSON properties are ignored
  (ObjectMapperProvider disables FAIL_ON_UNKNOWN_PROPERTIES);
- resource checks: `ValidationErrorXO` lists with ids such as "name", "BlobStoreName",
  "HelperBean.memberNames", or a bare JSON string (WebApplicationMessageException).
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from typing import Any

import nexus_api_client.models as m
from pydantic import BaseModel, StrictStr, TypeAdapter, ValidationError, field_validator

JSON = "application/json"
TEXT = "text/plain"

# (format, type) -> (request model, response model), as repository_management_api.py
# documents them for POST/PUT and GET /v1/repositories/{format}/{type}/{name}.
REPOSITORY_MODELS: dict[tuple[str, str], tuple[type[BaseModel], type[BaseModel]]] = {
    ("docker", "proxy"): (m.DockerProxyRepositoryApiRequest, m.DockerProxyApiRepository),
    ("docker", "hosted"): (m.DockerHostedRepositoryApiRequest, m.DockerHostedApiRepository),
    ("docker", "group"): (m.DockerGroupRepositoryApiRequest, m.DockerGroupApiRepository),
    ("pypi", "proxy"): (m.PypiProxyRepositoryApiRequest, m.PyPiProxyApiRepository),
    ("pypi", "hosted"): (m.PypiHostedRepositoryApiRequest, m.PypiHostedApiRepository),
    ("pypi", "group"): (m.PypiGroupRepositoryApiRequest, m.SimpleApiGroupDeployRepository),
    ("apt", "proxy"): (m.AptProxyRepositoryApiRequest, m.AptProxyApiRepository),
    ("apt", "hosted"): (m.AptHostedRepositoryApiRequest, m.AptHostedApiRepository),
}

# NamePatternConstants.MESSAGE in nexus-validation's ValidationMessages.properties.
NAME_PATTERN_MESSAGE = (
    "Only letters, digits, underscores(_), hyphens(-), and dots(.) are allowed and may not "
    "start with underscore or dot."
)

_JAVA_TYPES = {
    "bool_type": "java.lang.Boolean",
    "int_type": "java.lang.Integer",
    "string_type": "java.lang.String",
    "list_type": "java.util.ArrayList",
    "dict_type": "java.util.LinkedHashMap",
    "model_type": "java.lang.Object",
    "model_attributes_type": "java.lang.Object",
}


class PrivilegeResponse(m.ApiPrivilegeRequest):
    """ApiPrivilegeRequest as GET /v1/security/privileges answers it.

    The generated model's name pattern has no '*', yet Nexus's own built-in privileges are
    named with it (`nx-repository-view-docker-*-*`, RepositoryViewPrivilegeDescriptor.id),
    so the pattern is widened by exactly that character; everything else is Sonatype's.
    """

    @field_validator("name")
    def name_validate_regular_expression(cls, value: str) -> str:
        if not re.match(r"^[a-zA-Z0-9\-*]{1}[a-zA-Z0-9_\-.*]*$", value):
            raise ValueError("privilege name does not match Nexus's privilege id grammar")
        return value


class ValidationErrorXO(BaseModel):
    """org.sonatype.nexus.rest.ValidationErrorXO; the generated client has no model for it."""

    id: StrictStr
    message: StrictStr


ERROR_LIST = list[ValidationErrorXO]


class ApiError(Exception):
    """An answer other than success, with the body Nexus would send."""

    def __init__(self, status: int, payload: Any = None, content_type: str = JSON) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload
        self.content_type = content_type

    def body(self) -> bytes:
        if self.payload is None:
            return b""
        if self.content_type == TEXT:
            return str(self.payload).encode()
        if isinstance(self.payload, list):
            return encode(ERROR_LIST, self.payload)
        if isinstance(self.payload, dict):
            return encode(ValidationErrorXO, self.payload)
        return encode(StrictStr, self.payload)


def errors(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"id": ident, "message": message} for ident, message in pairs]


def bad_request(*pairs: tuple[str, str]) -> ApiError:
    return ApiError(400, errors(*pairs))


def message_error(status: int, message: str) -> ApiError:
    """WebApplicationMessageException: the body is the message as a JSON string."""
    return ApiError(status, message)


def unexpected(exception: str) -> ApiError:
    """UnexpectedExceptionMapper: 500, text/plain `ERROR: (ID <id>) <exception>`."""
    return ApiError(500, f"ERROR: (ID {uuid.uuid4()}) {exception}", TEXT)


class ContractViolation(RuntimeError):
    """The double was about to send a body its response model rejects: a bug in the double."""


@functools.cache
def _adapter(schema: Any) -> TypeAdapter[Any]:
    return TypeAdapter(schema)


def encode(schema: Any, payload: Any) -> bytes:
    """Serialize `payload` as Nexus does (indented JSON, nulls kept) after validating it."""
    raw = json.dumps(payload, indent=2).encode()
    try:
        _adapter(schema).validate_json(raw, strict=True)
    except ValidationError as exc:
        raise ContractViolation(f"response does not match {schema!r}: {exc}") from exc
    return raw


def parse(schema: Any, raw: bytes) -> Any:
    """Validate a request body against `schema` strictly; 400 with Nexus's body if it fails."""
    if not raw.strip():
        # RESTEasy passes null to the @NotNull body parameter (arg0 of the resource method).
        raise bad_request(("PARAMETER arg0", "must not be null"))
    try:
        json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, {"id": "*", "message": f"Could not process the input: {exc}"}) from exc
    try:
        return _adapter(schema).validate_json(raw, strict=True)
    except ValidationError as exc:
        raise ApiError(400, _nexus_errors(exc)) from exc


def _leaf(location: tuple[int | str, ...]) -> str:
    names = [part for part in location if isinstance(part, str)]
    return names[-1] if names else "arg0"


def _violation_message(error: Any) -> str:
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "greater_than_equal":
        return f"must be greater than or equal to {context['ge']}"
    if kind == "less_than_equal":
        return f"must be less than or equal to {context['le']}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if "regular expression" in message and _leaf(error["loc"]) == "name":
        return NAME_PATTERN_MESSAGE
    return message


def _nexus_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic's findings, worded as Nexus words them (see the module docstring)."""
    binding: list[dict[str, str]] = []
    violations: list[dict[str, str]] = []
    for error in exc.errors():
        leaf = _leaf(error["loc"])
        kind = error["type"]
        if kind == "missing" or (kind in _JAVA_TYPES and error.get("input") is None):
            violations.append({"id": f"PARAMETER {leaf}", "message": "must not be null"})
        elif kind in _JAVA_TYPES:
            binding.append(
                {
                    "id": leaf,
                    "message": (
                        f"Cannot deserialize value of type `{_JAVA_TYPES[kind]}` "
                        f"from {json.dumps(error.get('input'))[:80]}"
                    ),
                }
            )
        else:
            violations.append({"id": f"PARAMETER {leaf}", "message": _violation_message(error)})
    # Jackson fails while binding, before bean validation ever runs.
    return binding or violations
