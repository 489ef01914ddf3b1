import pathlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

DEV = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "dev"


@pytest.fixture(scope="session")
def dev_rows() -> pa.Table:
    """The dev dataset: WordNet glosses with real all-MiniLM-L6-v2 embeddings."""
    path = DEV / "base.parquet"
    if not path.exists():
        pytest.fail(f"the dev dataset {path} is needed")
    return pq.read_table(path)


@pytest.fixture(scope="session")
def dev_queries() -> pa.Table:
    """Queries of the dev dataset with exact (cosine) ground truth ids in `gt`."""
    return pq.read_table(DEV / "queries.parquet")


@pytest.fixture(scope="session")
def dev_table(tmp_path_factory, dev_rows):
    """The dev dataset as a vlake table with a cosine HNSW index on `vector`."""
    import vlake

    uri = str(tmp_path_factory.mktemp("dev") / "words")
    t = vlake.write_table(dev_rows, uri)
    return t.create_index("vector", type="hnsw", metric="cosine")


def small(n: int = 100, dim: int = 4, start: int = 0) -> pa.Table:
    """`n` rows of `id`, `pos` ('n' for even ids, 'v' for odd) and a `dim`-d vector [id, id+1, ...]."""
    ids = list(range(start, start + n))
    vectors = [[float(i + d) for d in range(dim)] for i in ids]
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "pos": pa.array(["n" if i % 2 == 0 else "v" for i in ids]),
            "vector": pa.array(vectors, pa.list_(pa.float32(), dim)),
        }
    )
