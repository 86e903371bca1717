//! Derivation paths in their `m/0/1` text form.

/// Formats a path as `m/0/1`.
pub fn path_string(path: &[u32]) -> String {
    let mut s = "m".to_string();
    for i in path {
        s.push('/');
        s.push_str(&i.to_string());
    }
    s
}

/// Parses `m/0/1` (non-hardened indices only).
pub fn parse_path(path: &str) -> Result<Vec<u32>, String> {
    let rest = path.strip_prefix('m').ok_or("a path starts with m")?;
    if rest.is_empty() {
        return Ok(vec![]);
    }
    let rest = rest.strip_prefix('/').ok_or("bad path")?;
    rest.split('/')
        .map(|c| {
            let i: u32 = c.parse().map_err(|_| format!("bad path component `{c}`"))?;
            if i >= 1 << 31 {
                return Err("hardened indices cannot be derived from a threshold key".into());
            }
            Ok(i)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        assert_eq!(parse_path("m").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_path("m/0/1").unwrap(), vec![0, 1]);
        assert_eq!(path_string(&[0, 1]), "m/0/1");
        assert!(parse_path("0/1").is_err());
        assert!(parse_path("m/x").is_err());
        assert!(parse_path("m/2147483648").is_err());
    }
}
