"""A checkpoint as Themis stored it before ADR 0040 (format 2: every per-trial map inside the
state's one text): `realistic_checkpoint()` encoded by the codec of `9515d54`. `DIGEST` stands
for the digest of the stored classes, filled in by the tests with today's (a class changing
shape makes every older checkpoint absent, which is another test's subject)."""

SEQ = 40
SUMMARY = (
    '{"format":"2:DIGEST","started":true,"planned":7,"epoch":1,"reset_epochs":{"score'
    '":1,"judge":1},"completions":{"score":1},"reduced":true,"judged":false}'
)
STATE = (
    '{"format":"2:DIGEST","resumes":["{\\"at\\":55.0,\\"changes\\":{\\"max_concurrent_task'
    's\\":{\\"old\\":32,\\"new\\":8}},\\"v\\":1}","{\\"at\\":65.0,\\"changes\\":{\\"sta'
    'ge_concurrency\\":{\\"old\\":{},\\"new\\":{\\"score\\":2}}},\\"v\\":1}"],"executions'
    '":2,"pause":"{\\"at\\":45.0,\\"reason\\":\\"cost_limit\\",\\"spent\\":1.25,\\"execut'
    'ion\\":1,\\"v\\":1}","earlier_failures":{},"judgements":[],"generations":{"n":6,"co'
    'lumns":[[10.0,11.0,12.0,13.0,14.0,15.0],["key-0","key-1","key-2","key-3","key-4"'
    ',"key-5"],["\\u00dcn\\u00efc\\u00f8d\\u00e9 \\u2713 \\u0000 \\ud800\\n\\"quoted\\"","'
    'The answer is 1.","The answer is 2.","The answer is 3.","The answer is 4.","The '
    'answer is 5."],[null,"stop",null,"stop",null,"stop"],[12,13,14,15,16,17],[4,4,4,'
    'null,4,4],[0.0,0.25,0.5,0.75,1.0,1.25],{"all":"fake-1"},[1,2,1,2,1,2],[false,fal'
    'se,true,false,false,false],[null,null,"run-older",null,null,null],{"all":null},{'
    '"all":null},[null,[[1,"rate_limit",429,2.0,2.0]],null,null,null,null],{"all":nul'
    'l}]},"generation_failures":{"n":1,"columns":[[40.0],{"all":"key-failed"},{"all":'
    '"server"},{"all":"500"},{"all":3},{"all":null},{"all":null},{"all":null},{"all":'
    '0}]},"parses":{"n":6,"columns":[[20.0,21.0,22.0,23.0,24.0,25.0],["trial-0","tria'
    'l-1","trial-2","trial-3","trial-4","trial-5"],["key-0","key-1","key-2","key-3","'
    'key-4","key-5"],["0","1","2","3",null,"5"],[null,null,null,null,"no number",null'
    '],{"all":0}]},"scores":{"n":6,"columns":[[70.0,71.0,72.0,73.0,74.0,75.0],["trial'
    '-0","trial-1","trial-2","trial-3","trial-4","trial-5"],["key-0","key-1","key-2",'
    '"key-3","key-4","key-5"],[{"exact_match":0.0,"numeric_match":1.0},{"exact_match"'
    ':1.0,"numeric_match":1.0},{"exact_match":0.0,"numeric_match":1.0},{"exact_match"'
    ':1.0,"numeric_match":1.0},{"exact_match":0.0,"numeric_match":1.0},{"exact_match"'
    ':1.0,"numeric_match":1.0}],{"all":1}]},"preflight_warnings":{"n":1,"columns":[[2'
    '.0],{"all":"key-1"},{"all":900},{"all":1000}]},"reductions":{"n":2,"columns":[[8'
    '5.0,86.0],["group-a","group-b"],{"all":"majority"},["key-0",null],[0,null],["0",'
    'null],[{"0":2,"1":1},{}],{"all":0}]},"code_executions":{"n":2,"columns":[[87.0,8'
    '8.0],["trial-0","trial-1"],["key-0","key-1"],[false,true],{"all":false},[1,null]'
    ',[[[1,"python3 x.py",1,0.5,false,null,"","Traceback",null]],[]],{"all":1}]}}'
)
REPORT = (
    '{"run_id":"run-a","name":"arith","status":"completed","completed_through_stage":'
    '"score","planned":7,"scored":6,"failed":1,"pending":0,"rows":[{"dataset":"d","mo'
    'del":"m","prompt":"p","metric":"exact_match","mean":0.5,"ci_low":0.1,"ci_high":0'
    '.9,"n":7,"failed":1,"unparsed":1,"ci_method":"t-cluster","truncated":0,"retried"'
    ':0,"cache_hits":0,"case_fields":{},"judge_failed":0,"judge":false},{"dataset":"d'
    '","model":"m","prompt":"p","metric":"numeric_match","mean":null,"ci_low":null,"c'
    'i_high":null,"n":0,"failed":0,"unparsed":0,"ci_method":"none","truncated":0,"ret'
    'ried":0,"cache_hits":0,"case_fields":{},"judge_failed":0,"judge":false}],"served'
    '":[],"truncated":0,"retried":0,"cache_hits":0,"by":["dataset","model","prompt"],'
    '"agreement":[],"v":1}'
)
