"""A small collection of Moroccan procedure sheets (Arabic and French), labelled for access tests."""

from __future__ import annotations

import pytest
from search_docs import DOCS, SECRET_DOC

from manara.govern.principal import Principal
from manara.meta.models import Classification
from manara.search.collections import create_collection
from manara.search.ingest import ingest_texts
from manara.workspace import Workspace


@pytest.fixture
def docs_collection(ws: Workspace, operator: Principal) -> str:
    create_collection(ws, operator, "procedures")
    ingest_texts(ws, operator, "procedures", DOCS)
    ingest_texts(ws, operator, "procedures", [SECRET_DOC], classification=Classification.secret)
    return "procedures"
