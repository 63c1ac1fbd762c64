"""A checkpoint as Themis stored it before ADR 0078 (format 4: each part compressed, its float
columns as JSON numbers): `realistic_checkpoint()` encoded by the codec of `4c7d37c`, its parts
given as their texts (a store kept each compressed by zlib). `DIGEST` stands for the digest of the
stored classes, filled in by the tests with today's."""

from tests.contract.checkpoint_format2 import REPORT  # the report's text is unchanged

__all__ = ["PARTS", "REPORT", "SEQ", "STATE", "SUMMARY"]

SEQ = 40

SUMMARY = (
    '{"format":"4:DIGEST","started":true,"planned":7,"epoch":1,"reset_epochs":{"score'
    '":1,"judge":1},"completions":{"score":1},"reduced":true,"judged":false}'
)

STATE = (
    '{"format":"4:DIGEST","resumes":["{\\"at\\":55.0,\\"changes\\":{\\"max_concurrent_task'
    's\\":{\\"old\\":32,\\"new\\":8}},\\"v\\":1}","{\\"at\\":65.0,\\"changes\\":{\\"stage_concurr'
    'ency\\":{\\"old\\":{},\\"new\\":{\\"score\\":2}}},\\"v\\":1}"],"executions":2,"pause":"{\\'
    '"at\\":45.0,\\"reason\\":\\"cost_limit\\",\\"spent\\":1.25,\\"execution\\":1,\\"v\\":1}","e'
    'arlier_failures":{},"judgements":[],"rows":{"generations":6,"generation_failures'
    '":1,"parses":6,"scores":6,"preflight_warnings":1,"reductions":2,"code_executions'
    '":2}}'
)

PARTS = (
    (
        '{"map":"generations","start":0,"n":6,"columns":[[10.0,11.0,12.0,13.0,14.0,15'
        '.0],["key-0","key-1","key-2","key-3","key-4","key-5"],["\\u00dcn\\u00efc\\u00f8'
        'd\\u00e9 \\u2713 \\u0000 \\ud800\\n\\"quoted\\"","The answer is 1.","The answer is '
        '2.","The answer is 3.","The answer is 4.","The answer is 5."],[null,"stop",n'
        'ull,"stop",null,"stop"],[12,13,14,15,16,17],[4,4,4,null,4,4],[0.0,0.25,0.5,0'
        '.75,1.0,1.25],{"all":"fake-1"},[1,2,1,2,1,2],[false,false,true,false,false,f'
        'alse],[null,null,"run-older",null,null,null],{"all":null},{"all":null},[null'
        ',[[1,"rate_limit",429,2.0,2.0]],null,null,null,null],{"all":null}]}'
    ),
    (
        '{"map":"generation_failures","start":0,"n":1,"columns":[[40.0],{"all":"key-f'
        'ailed"},{"all":"server"},{"all":"500"},{"all":3},{"all":null},{"all":null},{'
        '"all":null},{"all":0}]}'
    ),
    (
        '{"map":"parses","start":0,"n":6,"columns":[[20.0,21.0,22.0,23.0,24.0,25.0],['
        '"trial-0","trial-1","trial-2","trial-3","trial-4","trial-5"],{"as":[0,1]},["'
        '0","1","2","3",null,"5"],[null,null,null,null,"no number",null],{"all":0}]}'
    ),
    (
        '{"map":"scores","start":0,"n":6,"columns":[[70.0,71.0,72.0,73.0,74.0,75.0],{'
        '"as":[2,1]},{"as":[0,1]},[{"exact_match":0.0,"numeric_match":1.0},{"exact_ma'
        'tch":1.0,"numeric_match":1.0},{"exact_match":0.0,"numeric_match":1.0},{"exac'
        't_match":1.0,"numeric_match":1.0},{"exact_match":0.0,"numeric_match":1.0},{"'
        'exact_match":1.0,"numeric_match":1.0}],{"all":1}]}'
    ),
    (
        '{"map":"preflight_warnings","start":0,"n":1,"columns":[[2.0],{"all":"key-1"}'
        ',{"all":900},{"all":1000}]}'
    ),
    (
        '{"map":"reductions","start":0,"n":2,"columns":[[85.0,86.0],["group-a","group'
        '-b"],{"all":"majority"},["key-0",null],[0,null],["0",null],[{"0":2,"1":1},{}'
        '],{"all":0}]}'
    ),
    (
        '{"map":"code_executions","start":0,"n":2,"columns":[[87.0,88.0],["trial-0","'
        'trial-1"],["key-0","key-1"],[false,true],{"all":false},[1,null],[[[1,"python'
        '3 x.py",1,0.5,false,null,"","Traceback",null]],[]],{"all":1}]}'
    ),
)
