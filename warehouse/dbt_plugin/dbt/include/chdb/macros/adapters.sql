{# The chdb adapter reuses every clickhouse__ macro through the plugin's dependency. #}
