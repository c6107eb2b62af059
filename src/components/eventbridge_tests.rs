//! Tests of the eventbridge pattern matcher: every rule, the reference's test cases, and the
//! malformed patterns it must refuse.

use super::*;
use serde_json::json;

fn compile(pattern: Value) -> EventbridgePattern {
    EventbridgePattern::compile(&pattern).expect("pattern should compile")
}

fn compile_error(pattern: Value) -> String {
    match EventbridgePattern::compile(&pattern) {
        Ok(compiled) => panic!("pattern {pattern} should not compile: {compiled:?}"),
        Err(Error::InvalidConfig { kind, message }) => {
            assert_eq!(kind, "validator");
            message
        }
        Err(other) => panic!("unexpected error kind: {other:?}"),
    }
}

fn matches(pattern: Value, event: Value) -> bool {
    compile(pattern).matches(&event)
}

// ---- full reference pattern (tests/EventbridgeTest.cpp) ----

fn reference_pattern() -> Value {
    json!({
        "a1": "a_value",
        "a2": ["a2_value_1", "a2_value_2"],

        "b1": [{"anything-but": "b1_value"}],
        "b2": [{"anything-but": ["b2_value_1", "b2_value_2"]}],
        "b3": [{"anything-but": {"prefix": "b3_prefix"}}],
        "b4": [{"anything-but": {"prefix": ["b4_prefix_1", "b4_prefix_2"]}}],
        "b5": [{"anything-but": {"prefix": {"equals-ignore-case": "b5_prefix"}}}],
        "b6": [{"anything-but": {"prefix": {"equals-ignore-case": ["b6_prefix_1", "b6_prefix_2"]}}}],
        "b7": [{"anything-but": {"suffix": "b7_suffix"}}],
        "b8": [{"anything-but": {"suffix": ["b8_suffix_1", "b8_suffix_2"]}}],
        "b9": [{"anything-but": {"suffix": {"equals-ignore-case": "b9_suffix"}}}],
        "b10": [{"anything-but": {"suffix": {"equals-ignore-case": ["b10_suffix_1", "b10_suffix_2"]}}}],

        "c1": [{"prefix": "c1_prefix"}],
        "c2": [{"prefix": ["c2_prefix_1", "c2_prefix_2"]}],
        "c3": [{"prefix": {"equals-ignore-case": "c3_prefix"}}],
        "c4": [{"prefix": {"equals-ignore-case": ["c4_prefix_1", "c4_prefix_2"]}}],

        "d1": [{"suffix": "d1_suffix"}],
        "d2": [{"suffix": ["d2_suffix_1", "d2_suffix_2"]}],
        "d3": [{"suffix": {"equals-ignore-case": "d3_suffix"}}],
        "d4": [{"suffix": {"equals-ignore-case": ["d4_suffix_1", "d4_suffix_2"]}}],

        "e1": [{"numeric": ["<", 42, ">=", 10]}],
        "e2": [{"numeric": ["<=", 42, ">", 10]}],

        "f1": [{"exists": true}],
        "f2": [{"exists": false}],

        "g1": [{"equals-ignore-case": "g1_VAluE_1"}],
        "g2": [{"equals-ignore-case": ["g2_VAluE_1", "g2_VAluE_2"]}],

        "h1": [{"wildcard": "abc*def*ghi"}],

        "i1": {"i1_1": "i1_1_value"},
        "i2.i2_1": "i2_1_value",

        "j1": [{"$or": [
            {"j1_1": [{"exists": true}]},
            {"j2_2": [{"exists": true}]}
        ]}]
    })
}

fn reference_example() -> Value {
    json!({
        "a1": "a_value",
        "a2": "a2_value_2",
        "b1": "not_b1_value",
        "b2": "not_b2_value_1",
        "b3": "not_b3_prefix_value",
        "b4": "not_b4_prefix_1",
        "b5": "not_b5_PREfix",
        "b6": "not_b6_PREfix_1",
        "b7": "b7_suffix_not",
        "b8": "b8_suffix_1_not",
        "b9": "b9_SUFfix_not",
        "b10": "b10_SUFfix_1_not",
        "c1": "c1_prefix_value",
        "c2": "c2_prefix_1_value",
        "c3": "c3_PREfix_value",
        "c4": "c4_PREfix_1_value",
        "d1": "value_d1_suffix",
        "d2": "value_d2_suffix_2",
        "d3": "value_d3_SUFfix",
        "d4": "value_d4_SUFfix_2",
        "e1": 33,
        "e2": 34,
        "f1": "something",
        "g1": "g1_vaLUe_1",
        "g2": "g2_vaLUe_2",
        "h1": "abcXXXdefYYghi",
        "i1": {"i1_1": "i1_1_value"},
        "i2": {"i2_1": "i2_1_value"},
        "j1": {"j2_2": 123}
    })
}

#[test]
fn reference_example_matches_reference_pattern() {
    let pattern = compile(reference_pattern());
    assert!(pattern.matches(&reference_example()));
}

#[test]
fn reference_pattern_rejects_each_single_violation() {
    let pattern = compile(reference_pattern());
    let violations: Vec<(&str, Value)> = vec![
        ("a1", json!("other")),
        ("a2", json!("a2_value_3")),
        ("b1", json!("b1_value")),
        ("b2", json!("b2_value_2")),
        ("b3", json!("b3_prefix_value")),
        ("b4", json!("b4_prefix_2_value")),
        ("b5", json!("B5_PREFIX_value")),
        ("b6", json!("b6_PREFIX_2_value")),
        ("b7", json!("value_b7_suffix")),
        ("b8", json!("value_b8_suffix_2")),
        ("b9", json!("value_B9_Suffix")),
        ("b10", json!("value_b10_SUFFIX_1")),
        ("c1", json!("value_c1_prefix")),
        ("c2", json!("c2_prefix_3")),
        ("c3", json!("c3_prefi")),
        ("c4", json!("c4_prefix_3")),
        ("d1", json!("d1_suffix_value")),
        ("d2", json!("d2_suffix_3")),
        ("d3", json!("d3_suffiX_")),
        ("d4", json!("D4_SUFFIX_3")),
        ("e1", json!(42)),
        ("e1", json!(9.99)),
        ("e2", json!(10)),
        ("e2", json!(42.5)),
        ("e2", json!("34")),
        ("f2", json!(null)),
        ("g1", json!("g1_value_2")),
        ("g2", json!("g2_value_3")),
        ("h1", json!("abcXXXdefYYgh")),
        ("i1", json!({"i1_1": "other"})),
        ("i2", json!({"i2_1": "other"})),
        ("i2", json!("i2_1_value")),
        ("j1", json!({"j3_3": 1})),
        ("j1", json!(5)),
    ];
    for (key, bad) in violations {
        let mut event = reference_example();
        event[key] = bad.clone();
        assert!(
            !pattern.matches(&event),
            "event with {key} = {bad} should not match"
        );
    }
    // Removing a field required by any rule but `exists: false` must fail too.
    for key in [
        "a1", "b1", "c1", "d1", "e1", "f1", "g1", "h1", "i1", "i2", "j1",
    ] {
        let mut event = reference_example();
        if let Some(object) = event.as_object_mut() {
            object.remove(key);
        }
        assert!(
            !pattern.matches(&event),
            "event without {key} should not match"
        );
    }
}

// ---- lookup and plain values ----

#[test]
fn bare_primitive_must_exist_and_be_equal() {
    assert!(matches(json!({"a": "x"}), json!({"a": "x"})));
    assert!(!matches(json!({"a": "x"}), json!({"a": "y"})));
    assert!(!matches(json!({"a": "x"}), json!({"b": "x"})));
    assert!(matches(json!({"a": true}), json!({"a": true})));
    assert!(!matches(json!({"a": true}), json!({"a": "true"})));
    assert!(matches(json!({"a": null}), json!({"a": null})));
    assert!(!matches(json!({"a": null}), json!({})));
    assert!(matches(json!({"n": 1}), json!({"n": 1.0})));
    assert!(matches(json!({"n": 2.5}), json!({"n": 2.5})));
    assert!(!matches(json!({"n": 1}), json!({"n": "1"})));
    assert!(matches(json!({"n": -3}), json!({"n": -3})));
    assert!(matches(json!({"n": u64::MAX}), json!({"n": u64::MAX})));
    assert!(!matches(json!({"n": u64::MAX}), json!({"n": -1})));
}

#[test]
fn array_fields_are_compared_as_a_whole() {
    assert!(!matches(json!({"a": "x"}), json!({"a": ["x", "y"]})));
    assert!(!matches(json!({"a": ["x", "y"]}), json!({"a": ["x", "y"]})));
    assert!(matches(
        json!({"a": [{"anything-but": "x"}]}),
        json!({"a": ["x"]})
    ));
    assert!(!matches(
        json!({"a": [{"prefix": "x"}]}),
        json!({"a": ["xy"]})
    ));
}

#[test]
fn list_of_primitives_matches_any() {
    let pattern = json!({"a": ["x", 1, null, false]});
    assert!(matches(pattern.clone(), json!({"a": "x"})));
    assert!(matches(pattern.clone(), json!({"a": 1.0})));
    assert!(matches(pattern.clone(), json!({"a": null})));
    assert!(matches(pattern.clone(), json!({"a": false})));
    assert!(!matches(pattern.clone(), json!({"a": "y"})));
    assert!(!matches(pattern, json!({})));
}

#[test]
fn empty_pattern_and_empty_lists() {
    assert!(matches(json!({}), json!({"anything": 1})));
    assert!(matches(json!({}), json!("not even an object")));
    // An empty rule list has no rule that can hold.
    assert!(!matches(json!({"a": []}), json!({"a": 1})));
    assert!(!matches(json!({"a": []}), json!({})));
    // An empty sub-pattern only requires presence.
    assert!(matches(json!({"a": {}}), json!({"a": 3})));
    assert!(!matches(json!({"a": {}}), json!({})));
}

#[test]
fn dot_paths_follow_nested_objects() {
    let pattern = json!({"a.b.c": 1});
    assert!(matches(pattern.clone(), json!({"a": {"b": {"c": 1}}})));
    assert!(!matches(pattern.clone(), json!({"a": {"b": {"c": 2}}})));
    assert!(!matches(pattern.clone(), json!({"a": {"b": 1}})));
    assert!(!matches(pattern.clone(), json!({"a": [{"b": {"c": 1}}]})));
    assert!(!matches(pattern.clone(), json!({"a": "b"})));
    assert!(!matches(pattern, json!({"a.b.c": 1})));
    // getline-style tokenisation of odd keys.
    assert!(matches(json!({"a.": 1}), json!({"a": 1})));
    assert!(matches(json!({"a..b": 1}), json!({"a": {"": {"b": 1}}})));
    assert!(matches(json!({"": [{"numeric": [">", 0]}]}), json!(5)));
}

#[test]
fn nested_objects_are_sub_patterns() {
    let pattern = json!({"a": {"b": {"c": [{"prefix": "p"}]}, "d": 4}});
    assert!(matches(
        pattern.clone(),
        json!({"a": {"b": {"c": "pq"}, "d": 4, "e": 0}})
    ));
    assert!(!matches(
        pattern.clone(),
        json!({"a": {"b": {"c": "qp"}, "d": 4}})
    ));
    assert!(!matches(pattern.clone(), json!({"a": {"b": {"c": "pq"}}})));
    assert!(!matches(pattern.clone(), json!({"a": 4})));
    assert!(!matches(pattern, json!({})));
    // A dot path inside a sub-pattern is relative to the sub-object.
    assert!(matches(
        json!({"a": {"b.c": 1}}),
        json!({"a": {"b": {"c": 1}}})
    ));
}

#[test]
fn several_entries_must_all_hold() {
    let pattern = json!({"a": 1, "b": [{"exists": true}]});
    assert!(matches(pattern.clone(), json!({"a": 1, "b": 0})));
    assert!(!matches(pattern.clone(), json!({"a": 1})));
    assert!(!matches(pattern, json!({"a": 2, "b": 0})));
}

#[test]
fn a_rule_list_matches_when_any_rule_matches() {
    let pattern = json!({"a": [{"prefix": "x"}, {"numeric": [">", 10]}, {"exists": false}]});
    assert!(matches(pattern.clone(), json!({"a": "xyz"})));
    assert!(matches(pattern.clone(), json!({"a": 11})));
    assert!(matches(pattern.clone(), json!({})));
    assert!(!matches(pattern.clone(), json!({"a": "yz"})));
    assert!(!matches(pattern, json!({"a": 10})));
}

// ---- rules ----

#[test]
fn exists_true_and_false() {
    assert!(matches(
        json!({"a": [{"exists": true}]}),
        json!({"a": null})
    ));
    assert!(matches(json!({"a": [{"exists": true}]}), json!({"a": 0})));
    assert!(!matches(json!({"a": [{"exists": true}]}), json!({})));
    assert!(matches(json!({"a": [{"exists": false}]}), json!({})));
    assert!(!matches(
        json!({"a": [{"exists": false}]}),
        json!({"a": null})
    ));
    assert!(matches(
        json!({"a.b": [{"exists": false}]}),
        json!({"a": 1})
    ));
    assert!(matches(
        json!({"a.b": [{"exists": false}]}),
        json!({"a": {"c": 1}})
    ));
    assert!(!matches(
        json!({"a.b": [{"exists": false}]}),
        json!({"a": {"b": 1}})
    ));
    assert!(matches(
        json!({"a.b": [{"exists": true}]}),
        json!({"a": {"b": 1}})
    ));
}

#[test]
fn other_rules_never_match_an_absent_field() {
    for rule in [
        json!({"anything-but": "x"}),
        json!({"anything-but": []}),
        json!({"anything-but": {"prefix": "x"}}),
        json!({"prefix": ""}),
        json!({"suffix": ""}),
        json!({"equals-ignore-case": "x"}),
        json!({"numeric": []}),
        json!({"$or": [{}]}),
        json!({"wildcard": "*"}),
    ] {
        assert!(
            !matches(json!({"a": [rule.clone()]}), json!({"b": 1})),
            "{rule} matched an absent field"
        );
    }
}

#[test]
fn anything_but_primitive() {
    let pattern = json!({"a": [{"anything-but": "x"}]});
    assert!(matches(pattern.clone(), json!({"a": "y"})));
    assert!(matches(pattern.clone(), json!({"a": 1})));
    assert!(matches(pattern.clone(), json!({"a": {"x": 1}})));
    assert!(!matches(pattern, json!({"a": "x"})));
    let numeric = json!({"a": [{"anything-but": 3}]});
    assert!(!matches(numeric.clone(), json!({"a": 3.0})));
    assert!(matches(numeric, json!({"a": 4})));
    assert!(!matches(
        json!({"a": [{"anything-but": null}]}),
        json!({"a": null})
    ));
}

#[test]
fn anything_but_list() {
    let pattern = json!({"a": [{"anything-but": ["x", 2, true]}]});
    assert!(matches(pattern.clone(), json!({"a": "y"})));
    assert!(matches(pattern.clone(), json!({"a": false})));
    assert!(!matches(pattern.clone(), json!({"a": "x"})));
    assert!(!matches(pattern.clone(), json!({"a": 2})));
    assert!(!matches(pattern, json!({"a": true})));
    assert!(matches(
        json!({"a": [{"anything-but": []}]}),
        json!({"a": 1})
    ));
}

#[test]
fn anything_but_object() {
    let prefix = json!({"a": [{"anything-but": {"prefix": "x"}}]});
    assert!(matches(prefix.clone(), json!({"a": "yx"})));
    assert!(!matches(prefix.clone(), json!({"a": "xy"})));
    // The negation of "a string with this prefix" accepts non-strings.
    assert!(matches(prefix, json!({"a": 5})));
    let numeric = json!({"a": [{"anything-but": {"numeric": [">", 0]}}]});
    assert!(matches(numeric.clone(), json!({"a": -1})));
    assert!(!matches(numeric, json!({"a": 1})));
    let double = json!({"a": [{"anything-but": {"anything-but": "x"}}]});
    assert!(matches(double.clone(), json!({"a": "x"})));
    assert!(!matches(double, json!({"a": "y"})));
    let wildcard = json!({"a": [{"anything-but": {"wildcard": "x*"}}]});
    assert!(matches(wildcard.clone(), json!({"a": "yx"})));
    assert!(!matches(wildcard, json!({"a": "xy"})));
}

#[test]
fn prefix_rule() {
    let single = json!({"a": [{"prefix": "ab"}]});
    assert!(matches(single.clone(), json!({"a": "ab"})));
    assert!(matches(single.clone(), json!({"a": "abc"})));
    assert!(!matches(single.clone(), json!({"a": "a"})));
    assert!(!matches(single.clone(), json!({"a": "Abc"})));
    assert!(!matches(single.clone(), json!({"a": "cab"})));
    assert!(!matches(single, json!({"a": ["abc"]})));
    let list = json!({"a": [{"prefix": ["ab", "cd"]}]});
    assert!(matches(list.clone(), json!({"a": "cde"})));
    assert!(!matches(list, json!({"a": "de"})));
    let ignore_case = json!({"a": [{"prefix": {"equals-ignore-case": "AbC"}}]});
    assert!(matches(ignore_case.clone(), json!({"a": "aBcdef"})));
    assert!(!matches(ignore_case.clone(), json!({"a": "ab"})));
    assert!(!matches(ignore_case, json!({"a": 1})));
    let ignore_case_list = json!({"a": [{"prefix": {"equals-ignore-case": ["X", "yZ"]}}]});
    assert!(matches(ignore_case_list.clone(), json!({"a": "YZZ"})));
    assert!(!matches(ignore_case_list, json!({"a": "zy"})));
    assert!(matches(json!({"a": [{"prefix": ""}]}), json!({"a": ""})));
    assert!(!matches(json!({"a": [{"prefix": []}]}), json!({"a": "x"})));
    // Non-ASCII text is compared byte for byte; only ASCII letters fold.
    assert!(matches(
        json!({"a": [{"prefix": "é"}]}),
        json!({"a": "été"})
    ));
    assert!(!matches(
        json!({"a": [{"prefix": {"equals-ignore-case": "É"}}]}),
        json!({"a": "été"})
    ));
}

#[test]
fn suffix_rule() {
    let single = json!({"a": [{"suffix": "yz"}]});
    assert!(matches(single.clone(), json!({"a": "xyz"})));
    assert!(matches(single.clone(), json!({"a": "yz"})));
    assert!(!matches(single.clone(), json!({"a": "z"})));
    assert!(!matches(single.clone(), json!({"a": "xyZ"})));
    assert!(!matches(single, json!({"a": 12})));
    let list = json!({"a": [{"suffix": ["yz", "12"]}]});
    assert!(matches(list.clone(), json!({"a": "a12"})));
    assert!(!matches(list, json!({"a": "a21"})));
    let ignore_case = json!({"a": [{"suffix": {"equals-ignore-case": "YZ"}}]});
    assert!(matches(ignore_case.clone(), json!({"a": "xYz"})));
    assert!(!matches(ignore_case, json!({"a": "yzx"})));
    let ignore_case_list = json!({"a": [{"suffix": {"equals-ignore-case": ["Q", "rs"]}}]});
    assert!(matches(ignore_case_list.clone(), json!({"a": "aRS"})));
    assert!(!matches(ignore_case_list, json!({"a": "sr"})));
}

#[test]
fn equals_ignore_case_rule() {
    let single = json!({"a": [{"equals-ignore-case": "HeLLo"}]});
    assert!(matches(single.clone(), json!({"a": "hello"})));
    assert!(matches(single.clone(), json!({"a": "HELLO"})));
    assert!(!matches(single.clone(), json!({"a": "hello!"})));
    assert!(!matches(single, json!({"a": 5})));
    let list = json!({"a": [{"equals-ignore-case": ["A", "b"]}]});
    assert!(matches(list.clone(), json!({"a": "B"})));
    assert!(!matches(list, json!({"a": "c"})));
}

#[test]
fn numeric_rule() {
    let range = json!({"a": [{"numeric": [">", 0, "<=", 5]}]});
    assert!(matches(range.clone(), json!({"a": 5})));
    assert!(matches(range.clone(), json!({"a": 0.5})));
    assert!(!matches(range.clone(), json!({"a": 0})));
    assert!(!matches(range.clone(), json!({"a": 5.01})));
    assert!(!matches(range.clone(), json!({"a": "3"})));
    assert!(!matches(range, json!({"a": null})));
    let equal = json!({"a": [{"numeric": ["=", 301.8]}]});
    assert!(matches(equal.clone(), json!({"a": 3.018e2})));
    assert!(!matches(equal, json!({"a": 301})));
    let ge_lt = json!({"a": [{"numeric": [">=", -1, "<", 1]}]});
    assert!(matches(ge_lt.clone(), json!({"a": -1})));
    assert!(!matches(ge_lt.clone(), json!({"a": 1})));
    assert!(!matches(ge_lt, json!({"a": -1.5})));
    // Without conditions only the "is a number" requirement remains.
    let empty = json!({"a": [{"numeric": []}]});
    assert!(matches(empty.clone(), json!({"a": 7})));
    assert!(!matches(empty, json!({"a": "7"})));
}

#[test]
fn or_rule() {
    let pattern = json!({"a": [{"$or": [
        {"x": [{"numeric": [">", 0, "<=", 5]}]},
        {"y": [{"numeric": ["<", 10]}]},
        {"z": [{"numeric": ["=", 3.018e2]}]}
    ]}]});
    assert!(matches(pattern.clone(), json!({"a": {"x": 3}})));
    assert!(matches(pattern.clone(), json!({"a": {"y": 9, "x": 100}})));
    assert!(matches(pattern.clone(), json!({"a": {"z": 301.8}})));
    assert!(!matches(pattern.clone(), json!({"a": {"x": 6, "y": 10}})));
    assert!(!matches(pattern.clone(), json!({"a": 3})));
    assert!(!matches(pattern.clone(), json!({"x": 3})));
    assert!(!matches(json!({"a": [{"$or": []}]}), json!({"a": {}})));
    // Sub-patterns apply to the field value, which need not be an object.
    assert!(matches(
        json!({"a": [{"$or": [{"b": [{"exists": false}]}]}]}),
        json!({"a": 1})
    ));
}

#[test]
fn wildcard_rule() {
    let pattern = json!({"a": [{"wildcard": "abc*def*ghi"}]});
    assert!(matches(pattern.clone(), json!({"a": "abcdefghi"})));
    assert!(matches(pattern.clone(), json!({"a": "abcXXXdefYYghi"})));
    assert!(matches(pattern.clone(), json!({"a": "abcdefdefghighi"})));
    assert!(!matches(pattern.clone(), json!({"a": "abcdefgh"})));
    assert!(!matches(pattern.clone(), json!({"a": "xabcdefghi"})));
    assert!(!matches(pattern, json!({"a": 5})));
    // Regex metacharacters are literal.
    let dot = json!({"a": [{"wildcard": "a.b*"}]});
    assert!(!matches(dot.clone(), json!({"a": "axbc"})));
    assert!(matches(dot.clone(), json!({"a": "a.bc"})));
    assert!(matches(dot, json!({"a": "a.b"})));
    for (glob, literal) in [
        ("(x|y)+", "(x|y)+"),
        ("[ab]?", "[ab]?"),
        ("^$", "^$"),
        ("a\\d", "a\\d"),
        ("a\\\\b", "a\\\\b"),
        ("{1,2}", "{1,2}"),
    ] {
        let pattern = json!({"a": [{"wildcard": glob}]});
        assert!(matches(pattern.clone(), json!({"a": literal})), "{glob}");
        assert!(!matches(pattern, json!({"a": "x"})), "{glob}");
    }
    assert!(!matches(
        json!({"a": [{"wildcard": "a\\\\b"}]}),
        json!({"a": "a\\b"})
    ));
    // `*` matches any sequence, the empty one and line breaks included.
    assert!(matches(json!({"a": [{"wildcard": "*"}]}), json!({"a": ""})));
    assert!(matches(
        json!({"a": [{"wildcard": "**"}]}),
        json!({"a": "x\ny"})
    ));
    assert!(matches(json!({"a": [{"wildcard": ""}]}), json!({"a": ""})));
    assert!(!matches(
        json!({"a": [{"wildcard": ""}]}),
        json!({"a": "x"})
    ));
    assert!(matches(
        json!({"a": [{"wildcard": "*é*"}]}),
        json!({"a": "caféine"})
    ));
}

#[test]
fn wildcard_glob_matcher() {
    let cases: &[(&str, &str, bool)] = &[
        ("", "", true),
        ("", "a", false),
        ("*", "", true),
        ("*", "anything", true),
        ("a*", "a", true),
        ("a*", "ba", false),
        ("*a", "ba", true),
        ("*a", "ab", false),
        ("a*b*c", "abc", true),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "acb", false),
        ("*ab*ab*", "xabyab", true),
        ("*aab", "aaaab", true),
        ("a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
        ("abc", "abc", true),
        ("abc", "abcd", false),
    ];
    for &(glob, text, expected) in cases {
        assert_eq!(
            wildcard_matches(glob.as_bytes(), text.as_bytes()),
            expected,
            "{glob:?} vs {text:?}"
        );
    }
}

// ---- compile errors ----

#[test]
fn pattern_must_be_an_object() {
    for pattern in [json!([]), json!("x"), json!(1), json!(null)] {
        assert_eq!(
            compile_error(pattern),
            "Invalid Eventbridge pattern: expected object"
        );
    }
}

#[test]
fn list_shape_errors() {
    let mix = "Invalid Eventbridge pattern: cannot mix primitives with complex conditions";
    assert_eq!(compile_error(json!({"a": [1, {"exists": true}]})), mix);
    assert_eq!(compile_error(json!({"a": [{"exists": true}, "x"]})), mix);
    assert_eq!(
        compile_error(json!({"a": [[1]]})),
        "Invalid Eventbridge pattern: expected object or primitive"
    );
    assert_eq!(
        compile_error(json!({"a": [1, [2]]})),
        "Invalid Eventbridge pattern: expected object or primitive"
    );
    let one = "Invalid Eventbridge pattern: each rule can only have one statement";
    assert_eq!(
        compile_error(json!({"a": [{"prefix": "x", "suffix": "y"}]})),
        one
    );
    assert_eq!(compile_error(json!({"a": [{}]})), one);
    assert_eq!(
        compile_error(json!({"a": [{"anything-but": {"prefix": "x", "suffix": "y"}}]})),
        one
    );
    // Errors inside nested objects surface too.
    assert_eq!(compile_error(json!({"a": {"b": [{}]}})), one);
}

#[test]
fn unexpected_rule_error() {
    assert_eq!(
        compile_error(json!({"a": [{"regex": "x"}]})),
        "Invalid Eventbridge pattern: unexpected rule: {\"regex\":\"x\"}"
    );
    assert_eq!(
        compile_error(json!({"a": [{"anything-but": {"exists": true}}]})),
        "Invalid Eventbridge pattern: unexpected rule: {\"exists\":true}"
    );
}

#[test]
fn exists_error() {
    for value in [json!("true"), json!(1), json!(null), json!([true])] {
        assert_eq!(
            compile_error(json!({"a": [{"exists": value}]})),
            "Invalid Eventbridge \"exists\" rule: expected boolean value"
        );
    }
}

#[test]
fn anything_but_error() {
    assert_eq!(
        compile_error(json!({"a": [{"anything-but": ["x", ["y"]]}]})),
        "Invalid Eventbridge \"anything-but\" rule: list should contain only primitive types"
    );
    assert_eq!(
        compile_error(json!({"a": [{"anything-but": [{"prefix": "x"}]}]})),
        "Invalid Eventbridge \"anything-but\" rule: list should contain only primitive types"
    );
    // Errors of the negated rule are reported as is.
    assert_eq!(
        compile_error(json!({"a": [{"anything-but": {"numeric": [">"]}}]})),
        "Invalid Eventbridge \"numeric\" rule: pattern should be a list of even number of elements"
    );
}

#[test]
fn prefix_and_suffix_errors() {
    for rule in ["prefix", "suffix"] {
        assert_eq!(
            compile_error(json!({"a": [{rule: ["x", 1]}]})),
            format!(
                "Invalid Eventbridge \"{rule}\" rule: list of prefixes should contain only strings"
            )
        );
        assert_eq!(
            compile_error(json!({"a": [{rule: {"other": "x"}}]})),
            format!(
                "Invalid Eventbridge \"{rule}\" rule: only \"equals-ignore-case\" is allowed as sub-pattern"
            )
        );
        assert_eq!(
            compile_error(
                json!({"a": [{rule: {"equals-ignore-case": "x", "other": "y"}}]})
            ),
            format!(
                "Invalid Eventbridge \"{rule}\" rule: only \"equals-ignore-case\" is allowed as sub-pattern"
            )
        );
        assert_eq!(
            compile_error(json!({"a": [{rule: {"equals-ignore-case": ["x", null]}}]})),
            format!(
                "Invalid Eventbridge \"{rule}\" rule: list in \"equals-ignore-case\" should contain only strings"
            )
        );
        assert_eq!(
            compile_error(json!({"a": [{rule: {"equals-ignore-case": 3}}]})),
            format!(
                "Invalid Eventbridge \"{rule}\" rule: \"equals-ignore-case\" should be a string or a list of strings"
            )
        );
        for bad in [json!(1), json!(null), json!(true)] {
            assert_eq!(
                compile_error(json!({"a": [{rule: bad}]})),
                format!(
                    "Invalid Eventbridge \"{rule}\" rule: pattern should be a string, a list, or an object"
                )
            );
        }
    }
}

#[test]
fn equals_ignore_case_errors() {
    assert_eq!(
        compile_error(json!({"a": [{"equals-ignore-case": ["x", 2]}]})),
        "Invalid Eventbridge \"equals-ignore-case\" rule: list should contain only strings"
    );
    for bad in [json!(2), json!({"x": "y"}), json!(null)] {
        assert_eq!(
            compile_error(json!({"a": [{"equals-ignore-case": bad}]})),
            "Invalid Eventbridge \"equals-ignore-case\" rule: pattern should be a string or a list of strings"
        );
    }
}

#[test]
fn numeric_errors() {
    let arity =
        "Invalid Eventbridge \"numeric\" rule: pattern should be a list of even number of elements";
    // The reference read past the end of an odd-length list; it is rejected here.
    assert_eq!(compile_error(json!({"a": [{"numeric": [">"]}]})), arity);
    assert_eq!(
        compile_error(json!({"a": [{"numeric": [">", 1, "<"]}]})),
        arity
    );
    assert_eq!(compile_error(json!({"a": [{"numeric": 5}]})), arity);
    assert_eq!(compile_error(json!({"a": [{"numeric": ">"}]})), arity);
    assert_eq!(compile_error(json!({"a": [{"numeric": {}}]})), arity);
    assert_eq!(
        compile_error(json!({"a": [{"numeric": [1, 1]}]})),
        "Invalid Eventbridge \"numeric\" rule: operator should be a string"
    );
    assert_eq!(
        compile_error(json!({"a": [{"numeric": [">", "1"]}]})),
        "Invalid Eventbridge \"numeric\" rule: operand should be a number"
    );
    // As in the reference, the operand is checked before the operator's name.
    assert_eq!(
        compile_error(json!({"a": [{"numeric": ["!=", null]}]})),
        "Invalid Eventbridge \"numeric\" rule: operand should be a number"
    );
    assert_eq!(
        compile_error(json!({"a": [{"numeric": [">", 0, "!=", 1]}]})),
        "Invalid Eventbridge \"numeric\" rule: unknown operator \"!=\""
    );
}

#[test]
fn or_errors() {
    let message = "Invalid Eventbridge \"$or\" rule: pattern should be a list of objects";
    assert_eq!(compile_error(json!({"a": [{"$or": {"b": 1}}]})), message);
    assert_eq!(
        compile_error(json!({"a": [{"$or": [{"b": 1}, 2]}]})),
        message
    );
    assert_eq!(
        compile_error(json!({"a": [{"$or": [[{"b": 1}]]}]})),
        message
    );
    // Errors inside the sub-patterns surface too.
    assert_eq!(
        compile_error(json!({"a": [{"$or": [{"b": [{"exists": 1}]}]}]})),
        "Invalid Eventbridge \"exists\" rule: expected boolean value"
    );
}

#[test]
fn wildcard_error() {
    for bad in [json!(1), json!(["a*"]), json!(null), json!({"x": 1})] {
        assert_eq!(
            compile_error(json!({"a": [{"wildcard": bad}]})),
            "Invalid Eventbridge \"wildcard\" rule: pattern should be a string"
        );
    }
}

#[test]
fn error_display_names_the_validator() {
    let error = EventbridgePattern::compile(&json!([])).expect_err("not an object");
    assert_eq!(
        error.to_string(),
        "invalid validator configuration: Invalid Eventbridge pattern: expected object"
    );
}
