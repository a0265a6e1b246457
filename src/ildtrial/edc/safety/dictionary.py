"""The adverse-event term dictionary: the curated CTCAE list shipped with the platform, and
a site's own full dictionary imported from CSV.

Parsing and refusing files is the core's job (:func:`ildtrial.core.safety.import_dictionary`:
type, size, encoding, columns, duplicate codes, spreadsheet-formula cells); this module
stores an accepted file and looks terms up. The imported dictionary is searched first,
because a site that holds the licensed full file has codes the curated list leaves empty.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from django.db import transaction
from django.utils import timezone

from ildtrial.core import safety as core
from ildtrial.core.roles import Permission
from ildtrial.edc.audit.context import because
from ildtrial.edc.errors import InputRefused, require
from ildtrial.edc.safety.models import DictionaryTerm, TermDictionary

SHIPPED_SOURCE = "CTCAE v5.0 (curated list shipped with ildtrial)"
#: the largest file accepted (a full MedDRA LLT extract as CSV is about 4 MB)
MAX_DICTIONARY_BYTES = 10_000_000
#: who may import a dictionary: coding is data management, so the data manager's right to
#: manage the study database is used (the role matrix has no separate coding permission)
IMPORT_PERMISSION = Permission.LOCK_DATA


class DictionaryRefused(InputRefused):
    """A dictionary file was refused; ``problems`` lists every reason (file location first)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("file", "; ".join(problems))


@lru_cache(maxsize=1)
def shipped_terms() -> tuple[core.Term, ...]:
    """The curated CTCAE v5.0 list (checked by the core on load)."""
    return tuple(core.load_terms())


@lru_cache(maxsize=1)
def _shipped_index() -> dict[str, core.Term]:
    index: dict[str, core.Term] = {}
    for term in shipped_terms():
        index[term.term.casefold()] = term
        if term.code:
            index.setdefault(term.code, term)
    return index


def active_dictionary() -> TermDictionary | None:
    return TermDictionary.objects.filter(active=True).order_by("-imported_at").first()


def find_term(text: str) -> tuple[core.Term, str] | None:
    """The dictionary term named by ``text`` (its name, any case, or its code) and its source."""
    wanted = (text or "").strip()
    if not wanted:
        return None
    imported = active_dictionary()
    if imported is not None:
        row = (imported.terms.filter(term_key=wanted.casefold()).first()
               or imported.terms.filter(code=wanted).first())
        if row is not None:
            return (core.Term(row.term, row.code or None, row.soc or None, row.term_ru or None),
                    f"{imported.name} ({imported.filename})")
    term = _shipped_index().get(wanted.casefold()) or _shipped_index().get(wanted)
    return (term, SHIPPED_SOURCE) if term is not None else None


def suggestions(limit: int = 3000) -> list[core.Term]:
    """Terms offered while typing: the curated list, then the imported dictionary (capped:
    a full MedDRA extract is too large for a page; any of its terms is still accepted)."""
    terms = list(shipped_terms())
    imported = active_dictionary()
    if imported is not None:
        seen = {t.term.casefold() for t in terms}
        for row in imported.terms.all()[: max(0, limit - len(terms))]:
            if row.term_key not in seen:
                terms.append(core.Term(row.term, row.code or None, row.soc or None, row.term_ru or None))
    return terms[:limit]


def import_site_dictionary(user, file_bytes: bytes, filename: str, name: str = "") -> TermDictionary:  # noqa: ANN001
    """Store a site's dictionary file as the active dictionary; refused files store nothing.

    The previous active dictionary is kept (events coded with it keep their codes) but no
    longer offered.
    """
    require(user, IMPORT_PERMISSION)
    try:
        terms = core.import_dictionary(file_bytes, filename, max_bytes=MAX_DICTIONARY_BYTES)
    except core.DictionaryImportError as exc:
        raise DictionaryRefused([f"{i.field}: {i.en}" for i in exc.issues]) from None
    label = (name or "").strip() or filename
    if len(label) > 200:
        raise InputRefused("name", "must be at most 200 characters")
    with transaction.atomic():
        previous = list(TermDictionary.objects.select_for_update().filter(active=True))
        with because(f"replaced by the dictionary imported from {filename}"):
            for old in previous:
                old.active = False
                old.save()
        stored = TermDictionary.objects.create(
            name=label, filename=filename[:255], sha256=hashlib.sha256(file_bytes).hexdigest(),
            term_count=len(terms), imported_by=user, imported_at=timezone.now(), active=True)
        DictionaryTerm.objects.bulk_create(
            [DictionaryTerm(dictionary=stored, term=t.term, term_key=t.term.casefold(), code=t.code or "",
                            soc=(t.soc or "")[:200], term_ru=(t.term_ru or "")[:250]) for t in terms],
            batch_size=2000)
    return stored
