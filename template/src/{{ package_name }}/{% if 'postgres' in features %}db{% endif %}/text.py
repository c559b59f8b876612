"""Text that PostgreSQL can store: validated where the request comes in, not by a 500.

JSON carries ``\\u0000`` (NUL) in a string; PostgreSQL's ``text`` and ``jsonb``
refuse it (``invalid byte sequence for encoding "UTF8": 0x00``). A model field
typed ``StoredText`` turns that into a 422 naming the field.
"""

from typing import Annotated

from pydantic import AfterValidator, Field


def storable(value: str) -> str:
    """``value`` unchanged; ``ValueError`` if PostgreSQL could not store it."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000): PostgreSQL cannot store it")
    return value


StoredText = Annotated[
    str,
    AfterValidator(storable),
    # The same rule in the OpenAPI schema, so clients (and fuzzers) know it.
    Field(json_schema_extra={"pattern": "^[^\\u0000]*$"}),
]
"""A ``str`` field whose value PostgreSQL ``text`` can hold."""
