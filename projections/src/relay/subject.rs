//! NATS subjects of relayed events: `<prefix>.<tenant>.<aggregate_type>.<aggregate_id>`,
//! each token sanitised so that no stored value can add tokens or wildcards.

/// What an empty token (or a missing tenant) becomes.
pub const EMPTY_TOKEN: &str = "_";

/// One subject token from an arbitrary value: `.`, `*`, `>`, whitespace and control
/// characters become `_`; an empty value becomes `_`. Different values can map to the
/// same token (`a.b` and `a_b`), so a subscriber that must not see another tenant's events
/// also compares the envelope's `tenantId`.
pub fn sanitize_token(value: &str) -> String {
    if value.is_empty() {
        return EMPTY_TOKEN.to_owned();
    }
    value
        .chars()
        .map(|c| {
            if matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The subject an event is published on. `tenant` `None` (an event without a tenant)
/// gives the token `_`.
pub fn subject_for(
    prefix: &str,
    tenant: Option<&str>,
    aggregate_type: &str,
    aggregate_id: &str,
) -> String {
    format!(
        "{prefix}.{}.{}.{}",
        sanitize_token(tenant.unwrap_or_default()),
        sanitize_token(aggregate_type),
        sanitize_token(aggregate_id)
    )
}

/// The filter for one tenant's events (`<prefix>.<tenant>.>`), or for all (`<prefix>.>`).
pub fn tenant_filter(prefix: &str, tenant: Option<&str>) -> String {
    match tenant {
        Some(tenant) => format!("{prefix}.{}.>", sanitize_token(tenant)),
        None => format!("{prefix}.>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_pass_unchanged() {
        assert_eq!(
            subject_for("flowable.events", Some("acme"), "ProcessModel", "3f2a-9b"),
            "flowable.events.acme.ProcessModel.3f2a-9b"
        );
    }

    #[test]
    fn separators_wildcards_and_whitespace_become_underscores() {
        assert_eq!(sanitize_token("a.b*c>d e\tf\ng\u{7}"), "a_b_c_d_e_f_g_");
        assert_eq!(
            subject_for("p", Some("t.>"), "Type *", "id.1"),
            "p.t__.Type__.id_1"
        );
    }

    #[test]
    fn empty_and_missing_tokens_become_underscore() {
        assert_eq!(subject_for("p", None, "", ""), "p._._._");
        assert_eq!(subject_for("p", Some(""), "T", "i"), "p._.T.i");
    }

    #[test]
    fn every_subject_has_exactly_five_tokens_after_a_two_token_prefix() {
        for tenant in ["", ".", "..", "a.b.c", " ", ">", "*"] {
            let subject = subject_for("flowable.events", Some(tenant), "x.y", "z w");
            assert_eq!(subject.split('.').count(), 5, "{subject}");
            assert!(subject.split('.').all(|token| !token.is_empty()));
        }
    }

    #[test]
    fn unicode_is_kept() {
        assert_eq!(sanitize_token("münchen"), "münchen");
    }

    #[test]
    fn filters() {
        assert_eq!(tenant_filter("p", Some("a.b")), "p.a_b.>");
        assert_eq!(tenant_filter("p", None), "p.>");
    }
}
