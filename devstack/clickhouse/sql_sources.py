"""What reaches outside the store: the table functions, engines and dictionary sources that read host
files, other servers or PostgreSQL, those that take a named collection or name a database, and the
grant a real server asks for each. Statements are checked against these sets (``sql_statement``).
"""

from __future__ import annotations

# Table functions (and the file() scalar function) that read host files or reach other servers. The
# read-only BI user must not use them; chDB's readonly=1 blocks some but not all of these paths. Not
# input(), which reads only the request's own body (``INSERT ... SELECT ... FROM input(...) FORMAT``).
EXTERNAL_FUNCTIONS = frozenset(
    name.lower()
    for name in [
        "file",
        "fileCluster",
        "url",
        "urlCluster",
        "s3",
        "s3Cluster",
        "gcs",
        "oss",
        "cosn",
        "azureBlobStorage",
        "azureBlobStorageCluster",
        "hdfs",
        "hdfsCluster",
        "remote",
        "remoteSecure",
        "cluster",
        "clusterAllReplicas",
        "mysql",
        "postgresql",
        "mongodb",
        "redis",
        "sqlite",
        "jdbc",
        "odbc",
        "executable",
        "deltaLake",
        "deltaLakeCluster",
        "deltaLakeS3",
        "deltaLakeAzure",
        "iceberg",
        "icebergS3",
        "icebergAzure",
        "icebergHDFS",
        "icebergLocal",
        "icebergCluster",
        "icebergS3Cluster",
        "hudi",
        "hudiCluster",
        "hive",
        "arrowFlight",
        "arrowflight",
        "ytsaurus",
        "paimon",
        "prometheusQuery",
        "timeSeriesData",
    ]
)


# What reaches PostgreSQL: the table function and the PostgreSQL engine (same word), the
# MaterializedPostgreSQL table and database engine, and a dictionary's SOURCE(POSTGRESQL(...)). Only a
# user allowed the PostgreSQL source (``users.User.postgres_source``: replication's) may use them.
POSTGRES_SOURCES = frozenset(["postgresql", "materializedpostgresql"])
# Functions and engines that take a named collection as their first argument (``remote(nc, ...)``,
# ``ENGINE = MySQL(nc)``): with one, the collection's credentials are used, and its keys may be
# overridden (``host = ...``, ClickHouse's default), which sends them elsewhere. Not ``cluster()``,
# whose first argument names a cluster, nor file()/input()/executable(), which take no collection.
# Engines and dictionary sources (``SOURCE(CLICKHOUSE(NAME nc host ...))``) that are no function too.
COLLECTION_FUNCTIONS = (
    (EXTERNAL_FUNCTIONS - {"file", "filecluster", "input", "executable", "cluster", "clusterallreplicas"})
    | POSTGRES_SOURCES
    | {"materializedmysql", "kafka", "nats", "rabbitmq", "clickhouse", "http", "cassandra"}
)
# What reaches outside the store: the functions above, and engines and dictionary sources that are
# no table function. A dictionary's SOURCE(HTTP(URL ...)) fetches a URL; SOURCE(CLICKHOUSE(...))
# reads another server, or this one's tables by strings (``TABLE 'named_collections' DB 'system'``):
# counted only when it is not a local source (``Statement._local_clickhouse_source``).
EXTERNAL_SOURCES = EXTERNAL_FUNCTIONS | {
    "http",
    "clickhouse",
    "cassandra",
    "kafka",
    "nats",
    "rabbitmq",
    "materializedmysql",
    "s3queue",
    "azurequeue",
    "executablepool",
    "executable_pool",
}
# Table functions whose first argument is the database they read (all of it, at most; ``grants``), and
# loop(), which reads one table named by its arguments (also as strings: ``loop('system', 't')``).
DATABASE_FUNCTIONS = frozenset(["merge", "mergetreeindex", "mergetreeprojection"])
TABLE_NAMING_FUNCTIONS = DATABASE_FUNCTIONS | {"loop"}


# The grant a real server asks for an external function (its SOURCES privileges, ``READ ON <source>``),
# by the start of the function's name, most specific first.
_SOURCE_GRANTS = (
    ("icebergazure", "AZURE"),
    ("icebergh", "HDFS"),
    ("icebergl", "FILE"),
    ("deltalakeazure", "AZURE"),
    ("materializedmysql", "MYSQL"),
    ("file", "FILE"),
    ("url", "URL"),
    ("http", "URL"),
    ("clickhouse", "REMOTE"),
    ("kafka", "KAFKA"),
    ("nats", "NATS"),
    ("rabbitmq", "RABBITMQ"),
    ("remote", "REMOTE"),
    ("cluster", "REMOTE"),
    ("azure", "AZURE"),
    ("hdfs", "HDFS"),
    ("mysql", "MYSQL"),
    ("postgresql", "POSTGRES"),
    ("mongodb", "MONGO"),
    ("redis", "REDIS"),
    ("sqlite", "SQLITE"),
    ("jdbc", "JDBC"),
    ("odbc", "ODBC"),
    ("hive", "HIVE"),
    ("s3", "S3"),
    ("gcs", "S3"),
    ("oss", "S3"),
    ("cosn", "S3"),
    ("deltalake", "S3"),
    ("iceberg", "S3"),
    ("hudi", "S3"),
)


def source_grant(function: str) -> str:
    """``READ ON <source>`` for an external function; SOURCES (all of them) where no one source fits."""
    name = function.lower()
    return next(
        (f"READ ON {source}" for start, source in _SOURCE_GRANTS if name.startswith(start)), "SOURCES"
    )
