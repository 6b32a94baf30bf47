//! Routes are declared once, through `route_table!`, which both registers
//! them with actix-web and lists them. The list is what the OpenAPI check
//! compares against the document, so a route cannot be served without
//! being documented (see `tests/api/openapi.rs`).

use actix_web::web;

/// One scope's routes: how to register them and what they are.
pub struct RouteTable {
    /// The scope's prefix, `""` for the root.
    pub prefix: &'static str,
    pub register: fn(&mut web::ServiceConfig),
    /// `(method, path)` with methods in lower case, as OpenAPI spells them.
    pub routes: &'static [(&'static str, &'static str)],
}

impl RouteTable {
    /// `(method, full path)` of every route, paths in OpenAPI form:
    /// `{path:.*}` becomes `{path}`.
    pub fn listing(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        self.routes
            .iter()
            .map(move |(method, path)| (*method, openapi_path(&format!("{}{path}", self.prefix))))
    }
}

/// An actix path pattern as OpenAPI writes it: `{name:regex}` → `{name}`.
pub fn openapi_path(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let (mut in_param, mut in_regex) = (false, false);
    for c in pattern.chars() {
        match c {
            '{' if !in_param => in_param = true,
            ':' if in_param => in_regex = true,
            '}' if in_param => (in_param, in_regex) = (false, false),
            _ => {}
        }
        if !in_regex {
            out.push(c);
        }
    }
    out
}

/// `route_table!(prefix; "/path" => { get: handler, post: other }, ...)`:
/// one resource per path (so a wrong method is a 405), one route per method.
macro_rules! route_table {
    ($prefix:expr; $( $path:literal => { $( $method:ident : $handler:path ),+ $(,)? } ),* $(,)?) => {
        $crate::api::route_table::RouteTable {
            prefix: $prefix,
            register: |cfg: &mut ::actix_web::web::ServiceConfig| {
                $(
                    cfg.service(
                        ::actix_web::web::resource($path)
                            $( .route(::actix_web::web::$method().to($handler)) )+
                    );
                )*
            },
            routes: &[ $( $( (stringify!($method), $path) ),+ ),* ],
        }
    };
}
pub(crate) use route_table;

#[cfg(test)]
mod tests {
    use super::openapi_path;

    #[test]
    fn regex_segments_lose_their_pattern() {
        assert_eq!(
            openapi_path("/api/v1/sessions/{name}/files/{path:.*}"),
            "/api/v1/sessions/{name}/files/{path}"
        );
        assert_eq!(openapi_path("/a/{id}"), "/a/{id}");
        assert_eq!(openapi_path("/docs/"), "/docs/");
    }
}
