// What Metabase does through the official ClickHouse JDBC driver, against one server, in one JVM.
//
// Run by tests/clickhouse/test_jdbc_client.py as a single-file source program:
//   java -cp 'clickhouse-jdbc jars/*' JdbcProbe.java URL USER PASSWORD DATABASE TABLE
// Each step prints one JSON line {"step": name, ...}; a step that throws prints {"step", "error",
// "cause"} instead, so the test sees every step's outcome from a single launch.

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.StringJoiner;

public class JdbcProbe {
    // Metabase's table types for DatabaseMetaData.getTables (metabase.driver.clickhouse-introspection).
    static final String[] TABLE_TYPES = {
        "TABLE", "VIEW", "FOREIGN TABLE", "REMOTE TABLE", "DICTIONARY", "MATERIALIZED VIEW", "MEMORY TABLE", "LOG TABLE"
    };

    interface Step {
        Map<String, Object> run() throws Exception;
    }

    public static void main(String[] args) throws Exception {
        String url = args[0], user = args[1], password = args[2], database = args[3], table = args[4];
        String qualified = database + "." + table;
        try (Connection conn = DriverManager.getConnection(url, metabaseProperties(user, password))) {
            DatabaseMetaData md = conn.getMetaData();
            step("connect", () -> fields(
                "driver", md.getDriverName() + " " + md.getDriverVersion(),
                "server", md.getDatabaseProductVersion()));
            // Metabase's version check and default time zone (clickhouse-version, db-default-timezone).
            step("version", () -> fields("rows", rows(conn.createStatement().executeQuery(
                "WITH s AS (SELECT version() AS ver, splitByChar('.', ver) AS verSplit) "
                    + "SELECT s.ver AS ver, toInt32(verSplit[1]) AS major FROM s"), "ver", "major")));
            step("timezone", () -> fields("rows", rows(
                conn.createStatement().executeQuery("SELECT timezone() AS tz"), "tz")));
            // Sync: schemas, tables of the configured database, then each table's columns and keys.
            step("schemas", () -> fields("rows", rows(md.getSchemas(), "TABLE_SCHEM")));
            step("catalogs", () -> fields("rows", rows(md.getCatalogs(), "TABLE_CAT")));
            step("tables", () -> fields("rows", rows(md.getTables(null, database, "%", TABLE_TYPES),
                "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE")));
            step("columns", () -> fields("rows", rows(md.getColumns(null, database, table, null),
                "COLUMN_NAME", "TYPE_NAME", "DATA_TYPE", "IS_NULLABLE")));
            step("primary_keys", () -> fields("rows", rows(md.getPrimaryKeys(null, database, table), "COLUMN_NAME")));
            // Queries: every column read as an object and as a string, as a result grid does.
            step("select", () -> fields("rows", typedRows(
                conn.createStatement().executeQuery("SELECT * FROM " + qualified + " ORDER BY code"))));
            step("prepared", () -> {
                try (PreparedStatement ps = conn.prepareStatement(
                        "SELECT code, amount FROM " + qualified + " WHERE channel = ? AND amount < ? ORDER BY code")) {
                    ps.setString(1, "phone");
                    ps.setBigDecimal(2, new java.math.BigDecimal("100"));
                    return fields("rows", rows(ps.executeQuery(), "code", "amount"));
                }
            });
            // A result of many compressed blocks, read to the end.
            step("many_rows", () -> {
                try (ResultSet rs = conn.createStatement().executeQuery(
                        "SELECT number, toString(number) AS text FROM numbers(300000)")) {
                    long count = 0, sum = 0, textLength = 0;
                    while (rs.next()) {
                        count++;
                        sum += rs.getLong(1);
                        textLength += rs.getString(2).length();
                    }
                    return fields("count", count, "sum", sum, "text_length", textLength);
                }
            });
            step("write", () -> {
                try (Statement s = conn.createStatement()) {
                    return fields("updated", s.executeUpdate("INSERT INTO " + qualified + " (code) VALUES ('written')"));
                }
            });
        }
    }

    // What Metabase's driver sets (metabase.driver.clickhouse/connection-details->spec), less
    // select_sequential_consistency: driver 0.10.0 refuses it as an unknown property, and as a
    // clickhouse_setting_ it is a setting change, which a readonly=1 user may not make.
    static Properties metabaseProperties(String user, String password) {
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("password", password);
        props.setProperty("ssl", "false");
        props.setProperty("use_server_time_zone_for_dates", "true");
        props.setProperty("product_name", "metabase/probe");
        props.setProperty("remember_last_set_roles", "true");
        props.setProperty("http_connection_provider", "HTTP_URL_CONNECTION");
        props.setProperty("jdbc_ignore_unsupported_values", "true");
        props.setProperty("jdbc_schema_term", "schema");
        props.setProperty("max_open_connections", "100");
        props.setProperty("custom_http_params", "");
        return props;
    }

    static void step(String name, Step body) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("step", name);
        try {
            line.putAll(body.run());
        } catch (Exception e) {
            line.put("error", e.getClass().getName() + ": " + e.getMessage());
            Throwable cause = e.getCause();
            line.put("cause", cause == null ? null : cause.getClass().getName() + ": " + cause.getMessage());
        }
        System.out.println(json(line));
    }

    static Map<String, Object> fields(Object... keysAndValues) {
        Map<String, Object> map = new LinkedHashMap<>();
        for (int i = 0; i < keysAndValues.length; i += 2) {
            map.put((String) keysAndValues[i], keysAndValues[i + 1]);
        }
        return map;
    }

    static List<Map<String, Object>> rows(ResultSet rs, String... columns) throws SQLException {
        List<Map<String, Object>> list = new ArrayList<>();
        try (rs) {
            while (rs.next()) {
                Map<String, Object> row = new LinkedHashMap<>();
                for (String column : columns) {
                    row.put(column, rs.getString(column));
                }
                list.add(row);
            }
        }
        return list;
    }

    static List<Map<String, Object>> typedRows(ResultSet rs) throws SQLException {
        List<Map<String, Object>> list = new ArrayList<>();
        try (rs) {
            ResultSetMetaData meta = rs.getMetaData();
            while (rs.next()) {
                Map<String, Object> row = new LinkedHashMap<>();
                for (int i = 1; i <= meta.getColumnCount(); i++) {
                    Object value = rs.getObject(i);
                    Map<String, Object> cell = new LinkedHashMap<>();
                    cell.put("type", meta.getColumnTypeName(i));
                    cell.put("class", value == null ? null : value.getClass().getName());
                    if (value instanceof java.sql.Array) {
                        value = Arrays.asList((Object[]) ((java.sql.Array) value).getArray());
                    }
                    cell.put("object", value == null ? null : value.toString());
                    cell.put("string", rs.getString(i));
                    if (value instanceof java.sql.Timestamp) {
                        cell.put("zoned", rs.getObject(i, java.time.ZonedDateTime.class).toString());
                    }
                    row.put(meta.getColumnName(i), cell);
                }
                list.add(row);
            }
        }
        return list;
    }

    static String json(Object value) {
        if (value == null) {
            return "null";
        }
        if (value instanceof Boolean || value instanceof Integer || value instanceof Long) {
            return value.toString();
        }
        if (value instanceof Map) {
            StringJoiner joined = new StringJoiner(",", "{", "}");
            for (Map.Entry<?, ?> entry : ((Map<?, ?>) value).entrySet()) {
                joined.add(json(entry.getKey().toString()) + ":" + json(entry.getValue()));
            }
            return joined.toString();
        }
        if (value instanceof List) {
            StringJoiner joined = new StringJoiner(",", "[", "]");
            for (Object item : (List<?>) value) {
                joined.add(json(item));
            }
            return joined.toString();
        }
        StringBuilder quoted = new StringBuilder("\"");
        for (char c : value.toString().toCharArray()) {
            if (c == '"' || c == '\\') {
                quoted.append('\\').append(c);
            } else if (c < 0x20) {
                quoted.append(String.format("\\u%04x", (int) c));
            } else {
                quoted.append(c);
            }
        }
        return quoted.append('"').toString();
    }
}
