//! Pipelines as a graph: which steps depend on which, the order they can
//! run in, and the templates of their messages (`{{steps.plan.result}}`,
//! `{{steps.plan.structured.items}}`, `{{item.title}}`), parsed and checked
//! before anything runs and rendered from the results of the steps a step
//! depends on.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

/// Its dependencies have not all ended yet.
pub const WAITING: &str = "waiting";
/// Claimed by one node, which is starting its jobs (shown as `running`).
pub const LAUNCHING: &str = "launching";
pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";
/// Never started: a step it depends on failed or was stopped.
pub const STOPPED: &str = "stopped";
pub const CANCELLED: &str = "cancelled";

/// States a step never leaves.
pub const STEP_FINAL: [&str; 4] = [DONE, FAILED, STOPPED, CANCELLED];

pub fn step_is_final(state: &str) -> bool {
    STEP_FINAL.contains(&state)
}

/// A step's id: what `depends_on` and templates call it.
pub fn valid_step_id(id: &str) -> bool {
    (1..=40).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// What the graph's checks need of a step.
#[derive(Debug, Clone)]
pub struct StepShape<'a> {
    pub id: &'a str,
    pub depends_on: &'a [String],
    pub message: &'a str,
    pub for_each: Option<&'a str>,
    /// It has an `output_format`, so its `structured` means something.
    pub structured: bool,
}

/// What a `{{ … }}` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `steps.<id>.result`: the answer text.
    Result { step: String },
    /// `steps.<id>.structured[.path]`: its structured output, or a part.
    Structured { step: String, path: Vec<String> },
    /// `item[.path]`: the fan-out's item, or a part.
    Item { path: Vec<String> },
}

impl Reference {
    fn parse(inner: &str) -> Result<Reference, String> {
        let segments: Vec<&str> = inner.split('.').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(format!("{{{{{inner}}}}} has an empty part"));
        }
        let path = |rest: &[&str]| rest.iter().map(|s| (*s).to_owned()).collect();
        match segments.as_slice() {
            ["item", rest @ ..] => Ok(Reference::Item { path: path(rest) }),
            ["steps", step, "result"] => Ok(Reference::Result {
                step: (*step).to_owned(),
            }),
            ["steps", step, "structured", rest @ ..] => Ok(Reference::Structured {
                step: (*step).to_owned(),
                path: path(rest),
            }),
            _ => Err(format!(
                "{{{{{inner}}}}} is not a reference: use steps.<id>.result, \
                 steps.<id>.structured[.path] or item[.path]"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Ref(Reference),
}

/// A message with its references, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    /// `{{ … }}` (spaces inside allowed) is a reference; an unclosed `{{`
    /// is an error rather than text, so a typo never goes to the model.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| "has a {{ without its }}".to_owned())?;
            pieces.push(Piece::Ref(Reference::parse(after[..close].trim())?));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template(pieces))
    }

    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.0.iter().filter_map(|p| match p {
            Piece::Ref(r) => Some(r),
            Piece::Text(_) => None,
        })
    }

    /// The message with each reference replaced (see [`render_reference`]).
    pub fn render(&self, outputs: &Outputs, item: Option<&Value>) -> String {
        let mut text = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Ref(r) => text.push_str(&render_reference(r, outputs, item)),
            }
        }
        text
    }
}

/// One job of a step that ended, as its dependents read it.
#[derive(Debug, Clone, PartialEq)]
pub enum UnitOutput {
    Done {
        text: String,
        structured: Option<Value>,
    },
    Failed {
        error: String,
    },
}

impl UnitOutput {
    fn structured(&self) -> Value {
        match self {
            UnitOutput::Done {
                structured: Some(v),
                ..
            } => v.clone(),
            _ => Value::Null,
        }
    }
}

/// A step that ended: one unit, or one per item of its fan-out.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutput {
    pub fanned_out: bool,
    pub units: Vec<UnitOutput>,
}

/// Outputs of ended steps, by step id.
pub type Outputs = HashMap<String, StepOutput>;

/// How a reference renders:
/// - `steps.X.result`: X's answer text; for a failed X (`on_failure:
///   continue`) `[step X failed: <error>]`. For a fan-out, each unit's
///   text under a `--- X[i] ---` line (i from 0, in item order), units
///   separated by a blank line; a failed unit's text is `[failed: <error>]`.
/// - `steps.X.structured[.path]`: the value as compact JSON, a string
///   without its quotes; a missing value is `null`. For a fan-out, a JSON
///   array with each unit's value (`null` for a failed unit).
/// - `item[.path]`: the same for the fan-out's item.
pub fn render_reference(reference: &Reference, outputs: &Outputs, item: Option<&Value>) -> String {
    match reference {
        Reference::Item { path } => show(item.and_then(|v| lookup(v, path))),
        Reference::Result { step } => {
            let Some(output) = outputs.get(step) else {
                return String::new();
            };
            if !output.fanned_out {
                return match output.units.first() {
                    Some(UnitOutput::Done { text, .. }) => text.clone(),
                    Some(UnitOutput::Failed { error }) => {
                        format!("[step {step} failed: {error}]")
                    }
                    None => String::new(),
                };
            }
            output
                .units
                .iter()
                .enumerate()
                .map(|(i, unit)| match unit {
                    UnitOutput::Done { text, .. } => format!("--- {step}[{i}] ---\n{text}"),
                    UnitOutput::Failed { error } => {
                        format!("--- {step}[{i}] ---\n[failed: {error}]")
                    }
                })
                .collect::<Vec<_>>()
                .join("\n\n")
        }
        Reference::Structured { step, path } => {
            let Some(output) = outputs.get(step) else {
                return "null".into();
            };
            if output.fanned_out {
                let all: Vec<Value> = output
                    .units
                    .iter()
                    .map(|u| {
                        lookup(&u.structured(), path)
                            .cloned()
                            .unwrap_or(Value::Null)
                    })
                    .collect();
                return Value::Array(all).to_string();
            }
            let value = output.units.first().map(UnitOutput::structured);
            show(value.as_ref().and_then(|v| lookup(v, path)))
        }
    }
}

/// The value a `for_each` names: `Structured` rendered as a value, not text.
pub fn for_each_value(step: &str, path: &[String], outputs: &Outputs) -> Value {
    let Some(output) = outputs.get(step) else {
        return Value::Null;
    };
    if output.fanned_out {
        return Value::Array(
            output
                .units
                .iter()
                .map(|u| {
                    lookup(&u.structured(), path)
                        .cloned()
                        .unwrap_or(Value::Null)
                })
                .collect(),
        );
    }
    output
        .units
        .first()
        .map(UnitOutput::structured)
        .and_then(|v| lookup(&v, path).cloned())
        .unwrap_or(Value::Null)
}

/// A string as itself, anything else as compact JSON, nothing as `null`.
fn show(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "null".into(),
    }
}

/// `path` into `value`: object keys, or array indexes.
pub fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, segment| match v {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A `for_each`: exactly one `{{steps.<id>.structured[.path]}}`; its step
/// and path.
pub fn parse_for_each(expression: &str) -> Result<(String, Vec<String>), String> {
    let template = Template::parse(expression.trim())?;
    match template.0.as_slice() {
        [Piece::Ref(Reference::Structured { step, path })] => Ok((step.clone(), path.clone())),
        _ => Err(format!(
            "{expression:?} must be one {{{{steps.<id>.structured[.path]}}}} naming an array"
        )),
    }
}

/// Checks the whole graph before anything runs; on success the steps'
/// indexes in an order where each comes after what it depends on. Each
/// error names the step (`steps[2] (review)`) and what is wrong.
pub fn check(steps: &[StepShape<'_>]) -> Result<Vec<usize>, String> {
    let name = |i: usize| format!("steps[{i}] ({})", steps[i].id);
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        if !valid_step_id(step.id) {
            return Err(format!(
                "steps[{i}].id {:?} is not a step id: use 1-40 characters of A-Z a-z 0-9 _ -",
                step.id
            ));
        }
        if index.insert(step.id, i).is_some() {
            return Err(format!("duplicate step id {:?}", step.id));
        }
    }
    for (i, step) in steps.iter().enumerate() {
        let mut seen = BTreeSet::new();
        for dep in step.depends_on {
            if !index.contains_key(dep.as_str()) {
                return Err(format!("{} depends on unknown step {dep:?}", name(i)));
            }
            if dep == step.id {
                return Err(format!("{} depends on itself", name(i)));
            }
            if !seen.insert(dep) {
                return Err(format!("{} names {dep:?} twice in depends_on", name(i)));
            }
        }
    }
    let order = topological_order(steps, &index).map_err(|cycle| {
        format!(
            "the steps form a cycle: {}",
            cycle
                .iter()
                .map(|&i| steps[i].id)
                .collect::<Vec<_>>()
                .join(" → ")
        )
    })?;
    for (i, step) in steps.iter().enumerate() {
        let upstream = ancestors(steps, &index, i);
        let refer = |what: &str, target: &str| -> Result<(), String> {
            match index.get(target) {
                None => Err(format!("{}{what} refers to unknown step {target:?}", name(i))),
                Some(_) if !upstream.contains(target) => Err(format!(
                    "{}{what} refers to step {target:?}, which it does not depend on",
                    name(i)
                )),
                Some(&t) if !steps[t].structured => Err(format!(
                    "{}{what} uses the structured output of step {target:?}, which has no output_format",
                    name(i)
                )),
                Some(_) => Ok(()),
            }
        };
        let template =
            Template::parse(step.message).map_err(|e| format!("{}.message {e}", name(i)))?;
        for reference in template.references() {
            match reference {
                Reference::Item { .. } if step.for_each.is_none() => {
                    return Err(format!(
                        "{}.message uses {{{{item}}}} but the step has no for_each",
                        name(i)
                    ))
                }
                Reference::Item { .. } => {}
                Reference::Result { step: target } => {
                    // `result` needs no output_format: checked as a dependency only.
                    if !upstream.contains(target.as_str()) {
                        refer(".message", target)?;
                    }
                }
                Reference::Structured { step: target, .. } => refer(".message", target)?,
            }
        }
        if let Some(expression) = step.for_each {
            let (target, _) =
                parse_for_each(expression).map_err(|e| format!("{}.for_each {e}", name(i)))?;
            refer(".for_each", &target)?;
        }
    }
    Ok(order)
}

/// An order where each step follows its dependencies, or the steps of
/// one cycle (Kahn's algorithm finds whether there is one).
fn topological_order(
    steps: &[StepShape<'_>],
    index: &HashMap<&str, usize>,
) -> Result<Vec<usize>, Vec<usize>> {
    let mut missing: Vec<usize> = steps.iter().map(|s| s.depends_on.len()).collect();
    let mut ready: Vec<usize> = (0..steps.len()).filter(|&i| missing[i] == 0).collect();
    let mut order = Vec::with_capacity(steps.len());
    while let Some(i) = ready.pop() {
        order.push(i);
        for (j, step) in steps.iter().enumerate() {
            if step.depends_on.iter().any(|d| d == steps[i].id) {
                missing[j] -= 1;
                if missing[j] == 0 {
                    ready.push(j);
                }
            }
        }
    }
    if order.len() == steps.len() {
        // Any order that respects dependencies will do; keep the given one
        // where it may.
        return Ok(stable_order(steps, index));
    }
    // Walk dependencies among the steps left until one repeats.
    let left: BTreeSet<usize> = (0..steps.len()).filter(|i| !order.contains(i)).collect();
    let mut path = Vec::new();
    let mut at = *left.iter().next().unwrap_or(&0);
    loop {
        if let Some(start) = path.iter().position(|&p| p == at) {
            let mut cycle: Vec<usize> = path[start..].to_vec();
            cycle.push(at);
            return Err(cycle);
        }
        path.push(at);
        at = steps[at]
            .depends_on
            .iter()
            .filter_map(|d| index.get(d.as_str()).copied())
            .find(|d| left.contains(d))
            .unwrap_or(at);
    }
}

/// Steps in their given order, each moved after its dependencies (the
/// graph is known to be acyclic).
fn stable_order(steps: &[StepShape<'_>], index: &HashMap<&str, usize>) -> Vec<usize> {
    fn visit(
        i: usize,
        steps: &[StepShape<'_>],
        index: &HashMap<&str, usize>,
        done: &mut Vec<bool>,
        out: &mut Vec<usize>,
    ) {
        if done[i] {
            return;
        }
        done[i] = true;
        for dep in steps[i].depends_on {
            if let Some(&d) = index.get(dep.as_str()) {
                visit(d, steps, index, done, out);
            }
        }
        out.push(i);
    }
    let mut done = vec![false; steps.len()];
    let mut out = Vec::with_capacity(steps.len());
    for i in 0..steps.len() {
        visit(i, steps, index, &mut done, &mut out);
    }
    out
}

/// Ids of every step `i` depends on, directly or through others.
fn ancestors<'a>(
    steps: &[StepShape<'a>],
    index: &HashMap<&str, usize>,
    i: usize,
) -> BTreeSet<&'a str> {
    let mut found = BTreeSet::new();
    let mut stack: Vec<usize> = vec![i];
    while let Some(at) = stack.pop() {
        for dep in steps[at].depends_on {
            if let Some(&d) = index.get(dep.as_str()) {
                if found.insert(steps[d].id) {
                    stack.push(d);
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct S {
        id: &'static str,
        deps: Vec<String>,
        message: &'static str,
        for_each: Option<&'static str>,
        structured: bool,
    }

    fn s(id: &'static str, deps: &[&str], message: &'static str) -> S {
        S {
            id,
            deps: deps.iter().map(|d| (*d).to_owned()).collect(),
            message,
            for_each: None,
            structured: false,
        }
    }

    fn run(steps: &[S]) -> Result<Vec<usize>, String> {
        let shapes: Vec<StepShape<'_>> = steps
            .iter()
            .map(|s| StepShape {
                id: s.id,
                depends_on: &s.deps,
                message: s.message,
                for_each: s.for_each,
                structured: s.structured,
            })
            .collect();
        check(&shapes)
    }

    #[test]
    fn a_graph_is_ordered_after_its_dependencies() {
        let order = run(&[
            s(
                "review",
                &["work"],
                "r {{steps.plan.result}} {{steps.work.result}}",
            ),
            s("work", &["plan"], "w"),
            s("plan", &[], "p"),
        ])
        .unwrap();
        assert_eq!(order, vec![2, 1, 0]);
    }

    #[test]
    fn each_broken_graph_is_named() {
        let err = run(&[s("a", &["b"], "x"), s("b", &["a"], "y")]).unwrap_err();
        assert!(
            err.contains("cycle") && err.contains("a → b → a") || err.contains("b → a → b"),
            "{err}"
        );
        let err = run(&[s("a", &["nope"], "x")]).unwrap_err();
        assert_eq!(err, "steps[0] (a) depends on unknown step \"nope\"");
        let err = run(&[s("a", &[], "x"), s("a", &[], "y")]).unwrap_err();
        assert_eq!(err, "duplicate step id \"a\"");
        let err = run(&[s("a", &[], "x"), s("b", &[], "{{steps.a.result}}")]).unwrap_err();
        assert!(
            err.contains("refers to step \"a\", which it does not depend on"),
            "{err}"
        );
        let err = run(&[s("b", &[], "{{steps.zz.result}}")]).unwrap_err();
        assert!(err.contains("unknown step \"zz\""), "{err}");
        let err = run(&[s("b", &[], "{{ steps.x }}")]).unwrap_err();
        assert!(err.contains("{{steps.x}} is not a reference"), "{err}");
        let err = run(&[s("b", &[], "{{item}}")]).unwrap_err();
        assert!(err.contains("no for_each"), "{err}");
        let err = run(&[s("b", &[], "open {{ steps")]).unwrap_err();
        assert!(err.contains("without its }}"), "{err}");
        let err = run(&[s("a", &[], "x"), s("b", &["a"], "{{steps.a.structured}}")]).unwrap_err();
        assert!(err.contains("no output_format"), "{err}");
        let err = run(&[s("a b", &[], "x")]).unwrap_err();
        assert!(err.contains("not a step id"), "{err}");
    }

    #[test]
    fn a_reference_through_a_dependency_of_a_dependency_is_allowed() {
        let mut plan = s("plan", &[], "p");
        plan.structured = true;
        let mut work = s("work", &["plan"], "do {{item.title}}");
        work.for_each = Some("{{steps.plan.structured.items}}");
        let review = s(
            "review",
            &["work"],
            "{{steps.plan.structured.items}} {{steps.work.result}}",
        );
        assert!(run(&[plan, work, review]).is_ok());
        let mut bad = s("w", &[], "{{item}}");
        bad.for_each = Some("steps.plan.structured");
        assert!(run(&[bad]).unwrap_err().contains("for_each"));
    }

    #[test]
    fn results_render_and_fan_ins_are_labelled() {
        let mut outputs = Outputs::new();
        outputs.insert(
            "plan".into(),
            StepOutput {
                fanned_out: false,
                units: vec![UnitOutput::Done {
                    text: "the plan".into(),
                    structured: Some(json!({"items": [{"title": "one"}, "two"]})),
                }],
            },
        );
        outputs.insert(
            "work".into(),
            StepOutput {
                fanned_out: true,
                units: vec![
                    UnitOutput::Done {
                        text: "did one".into(),
                        structured: None,
                    },
                    UnitOutput::Failed {
                        error: "boom".into(),
                    },
                ],
            },
        );
        let t = Template::parse(
            "P={{steps.plan.result}} I={{ steps.plan.structured.items }} T={{steps.plan.structured.items.0.title}} M={{steps.plan.structured.nope}}\n{{steps.work.result}}",
        )
        .unwrap();
        assert_eq!(
            t.render(&outputs, None),
            "P=the plan I=[{\"title\":\"one\"},\"two\"] T=one M=null\n--- work[0] ---\ndid one\n\n--- work[1] ---\n[failed: boom]"
        );
        let item = json!({"title": "first"});
        let t = Template::parse("do {{item.title}} of {{item}}").unwrap();
        assert_eq!(
            t.render(&outputs, Some(&item)),
            "do first of {\"title\":\"first\"}"
        );
        assert_eq!(
            for_each_value("plan", &["items".into()], &outputs),
            json!([{"title": "one"}, "two"])
        );
        let failed = Outputs::from([(
            "a".to_owned(),
            StepOutput {
                fanned_out: false,
                units: vec![UnitOutput::Failed {
                    error: "500".into(),
                }],
            },
        )]);
        assert_eq!(
            Template::parse("{{steps.a.result}}")
                .unwrap()
                .render(&failed, None),
            "[step a failed: 500]"
        );
    }
}
