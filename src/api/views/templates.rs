//! Template documents: the templates a caller may see.

use claude_code_api_core::security::auth::Caller;
use claude_code_api_core::templates::{Template, Templates};
use std::collections::BTreeMap;

/// Every template by name, as `caller` may see it.
pub fn listing(templates: &Templates, caller: &Caller) -> BTreeMap<String, Template> {
    templates
        .all()
        .iter()
        .map(|(name, t)| (name.clone(), shown_to(caller, t.clone())))
        .collect()
}

/// Credentials in full to the server's owner only.
pub fn shown_to(caller: &Caller, template: Template) -> Template {
    if caller.is_owner() {
        template
    } else {
        template.redacted()
    }
}
