//! The small SQL layer both backends share: bound values, result rows, and one transaction
//! type ([`Tx`]) running the same `$1`-style statements on SQLite and PostgreSQL.

use super::StoreError;

/// A value bound to, or read from, a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// 64-bit integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// Bytes or NULL.
    OptBytes(Option<Vec<u8>>),
    /// Text or NULL.
    OptText(Option<String>),
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Text(t) | Value::OptText(Some(t)) => {
                ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes()))
            }
            Value::Bytes(b) | Value::OptBytes(Some(b)) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::OptBytes(None) | Value::OptText(None) => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

/// A result row: its columns in order (NULL as `OptBytes(None)`).
#[derive(Debug)]
pub struct Row(Vec<Value>);

impl Row {
    fn get(&self, i: usize) -> Result<&Value, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Corrupt(format!("no column {i}")))
    }

    /// Column `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.get(i)? {
            Value::Int(v) => Ok(*v),
            other => Err(StoreError::Corrupt(format!("column {i}: {other:?}"))),
        }
    }

    /// Column `i` as text.
    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        match self.get(i)? {
            Value::Text(v) | Value::OptText(Some(v)) => Ok(v.clone()),
            other => Err(StoreError::Corrupt(format!("column {i}: {other:?}"))),
        }
    }

    /// Column `i` as text or NULL.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.get(i)? {
            Value::OptBytes(None) | Value::OptText(None) => Ok(None),
            _ => self.text(i).map(Some),
        }
    }

    /// Column `i` as bytes.
    pub fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        match self.get(i)? {
            Value::Bytes(v) | Value::OptBytes(Some(v)) => Ok(v.clone()),
            other => Err(StoreError::Corrupt(format!("column {i}: {other:?}"))),
        }
    }

    /// Column `i` as bytes or NULL.
    pub fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get(i)? {
            Value::OptBytes(None) | Value::OptText(None) => Ok(None),
            _ => self.bytes(i).map(Some),
        }
    }
}

/// A transaction on either backend.
pub enum Tx<'a> {
    /// SQLite (an IMMEDIATE transaction: writers take turns).
    Sqlite(rusqlite::Transaction<'a>),
    /// PostgreSQL (READ COMMITTED; appends serialise on an advisory lock).
    Postgres(postgres::Transaction<'a>),
}

fn pg_params(params: &[Value]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                Value::Int(i) => Box::new(*i),
                Value::Text(t) => Box::new(t.clone()),
                Value::Bytes(b) => Box::new(b.clone()),
                Value::OptBytes(b) => Box::new(b.clone()),
                Value::OptText(t) => Box::new(t.clone()),
            }
        })
        .collect()
}

fn pg_row(row: &postgres::Row) -> Result<Row, StoreError> {
    use postgres::types::Type;
    let mut out = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let t = column.type_();
        let v = if *t == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?
                .map_or(Value::OptBytes(None), Value::Int)
        } else if *t == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map_or(Value::OptBytes(None), |v| Value::Int(v.into()))
        } else if *t == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?
                .map_or(Value::OptBytes(None), |v| Value::Int(v.into()))
        } else if *t == Type::BYTEA {
            Value::OptBytes(row.try_get::<_, Option<Vec<u8>>>(i)?)
        } else {
            Value::OptText(row.try_get::<_, Option<String>>(i)?)
        };
        out.push(v);
    }
    Ok(Row(out))
}

fn sqlite_value(v: rusqlite::types::Value) -> Value {
    use rusqlite::types::Value as V;
    match v {
        V::Null => Value::OptBytes(None),
        V::Integer(i) => Value::Int(i),
        V::Real(r) => Value::Int(r as i64),
        V::Text(t) => Value::Text(t),
        V::Blob(b) => Value::Bytes(b),
    }
}

impl Tx<'_> {
    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }

    /// Runs a statement; returns the number of rows changed.
    pub fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        Ok(match self {
            Tx::Sqlite(tx) => tx.execute(sql, rusqlite::params_from_iter(params.iter()))? as u64,
            Tx::Postgres(tx) => {
                let boxed = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    boxed.iter().map(|b| b.as_ref()).collect();
                tx.execute(sql, &refs)?
            }
        })
    }

    /// Runs a query; returns its rows.
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        match self {
            Tx::Sqlite(tx) => {
                let mut stmt = tx.prepare(sql)?;
                let n = stmt.column_count();
                let rows = stmt.query_map(rusqlite::params_from_iter(params.iter()), |r| {
                    (0..n)
                        .map(|i| r.get::<_, rusqlite::types::Value>(i).map(sqlite_value))
                        .collect::<rusqlite::Result<Vec<Value>>>()
                })?;
                let mut out = Vec::new();
                for row in rows {
                    out.push(Row(row?));
                }
                Ok(out)
            }
            Tx::Postgres(tx) => {
                let boxed = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    boxed.iter().map(|b| b.as_ref()).collect();
                tx.query(sql, &refs)?.iter().map(pg_row).collect()
            }
        }
    }

    /// The first row of a query, if any.
    pub fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}
