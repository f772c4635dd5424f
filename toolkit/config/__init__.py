"""Config files to a typed, validated config: the schema of every section, the parameter types, and the configs shipped with the package."""
