"""The shell shared by the APIs that take one API key and a base64 image in a form body.

Juhe's carDetect and verify_carlicense and Tianapi's licenseplate all ``POST``
``application/x-www-form-urlencoded`` with ``key`` and one base64 image field; they
differ in the field's name, the URL and how answers read. :class:`KeyedFormAdapter` holds
the common part: the settings block (:class:`KeySettings`), the credential id, and the
request (options checked, key required, size checked before calling and billing, the key
hidden from ``repr``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Generic, TypeVar

from pydantic import SecretStr

from worker.config import ProviderSettings
from worker.image_limits import ImageLimits, PreparedImage
from worker.providers.base import VendorRequest, check_options
from worker.providers.common import RedactedBytes, check_size, credential_id, key_of
from worker.providers.form import FORM_CONTENT_TYPE, form_body


class KeySettings(ProviderSettings):
    """A provider whose one credential is an API key: ``VREC_<PROVIDER>__KEY``."""

    key: SecretStr | None = None


S = TypeVar("S", bound=KeySettings)


class KeyedFormAdapter(Generic[S]):
    """Settings, credential id and form request of a one-key API; subclasses parse."""

    name: ClassVar[str]
    limits: ClassVar[ImageLimits]
    option_choices: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    image_field: ClassVar[str]  # the form field carrying the base64 image

    def __init__(self, settings: S) -> None:
        self.settings = settings

    def credential_id(self) -> str:
        return credential_id(self.settings.key)

    def key(self) -> str:
        """The key's value, or ConfigError naming the variable to set."""
        return key_of(self.settings.key, self.name)

    def require_credentials(self) -> None:
        self.key()

    def url(self) -> str:
        """Where requests go: the base URL (an API with several paths picks one)."""
        return self.settings.base_url

    def build_request(self, image: PreparedImage, options: Mapping[str, str]) -> VendorRequest:
        """The documented form POST: ``key`` and the base64 image field."""
        check_options(self, options)
        key = self.key()
        check_size(image, self.limits, self.name)
        body = form_body({"key": key}, {self.image_field: image.b64})
        headers = {"Content-Type": FORM_CONTENT_TYPE}
        return VendorRequest("POST", self.url(), headers, RedactedBytes(body))
