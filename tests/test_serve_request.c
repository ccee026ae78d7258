/*
 * test_serve_request.c — the request parsers of `clipmod serve` without a socket
 * (src/serve/request.h): base64 alphabets/padding/whitespace and its errors, JSON single and array
 * bodies with their limits and HTTP statuses, data URLs, multipart/form-data (quoted boundary,
 * preamble, binary image part), the Content-Type dispatch (415), and the JSON string escaper.
 */
#include "testlib.h"
#include "serve/request.h"

static void test_base64(void) {
    uint8_t *o = NULL;
    size_t n = 0;
    REQ_OK(cm_base64_decode("aGVsbG8=", 8, &o, &n));
    CHECK(n == 5 && !memcmp(o, "hello", 5) && o[5] == 0, "hello: %zu", n);
    free(o);
    REQ_OK(cm_base64_decode("aGVs\r\nbG8", 9, &o, &n));
    CHECK(n == 5 && !memcmp(o, "hello", 5), "no padding + CRLF");
    free(o);
    REQ_OK(cm_base64_decode("-_-_", 4, &o, &n));
    CHECK(n == 3 && o[0] == 0xfb && o[1] == 0xff && o[2] == 0xbf, "url-safe alphabet");
    free(o);
    REQ_OK(cm_base64_decode("", 0, &o, &n));
    CHECK(n == 0, "empty");
    free(o);
    CHECK(cm_base64_decode("aGVsb", 5, &o, &n) == CM_ERR_FORMAT && !o, "one symbol too many");
    CHECK(cm_base64_decode("aG@s", 4, &o, &n) == CM_ERR_FORMAT && strstr(cm_last_error(), "offset 2"), "bad char: %s", cm_last_error());
    CHECK(cm_base64_decode("aGU=bG8=", 8, &o, &n) == CM_ERR_FORMAT && strstr(cm_last_error(), "padding"), "data after pad: %s", cm_last_error());
}

static void test_json(void) {
    CmReqLimits lim = {10, 3};
    CmReqBatch b;
    int http = 0;
    const char *one = "{\"image\":\"aGVsbG8=\",\"text\":\"hi\"}";
    REQ_OK(cm_req_parse_json((const uint8_t *)one, strlen(one), &lim, &b, &http));
    CHECK(b.n == 1 && !b.array && b.items[0].image_len == 5 && !strcmp(b.items[0].text, "hi"), "single");
    cm_req_batch_free(&b);
    const char *arr = "[{\"image\":\"data:image/png;base64,aGVsbG8=\"},{\"text\":\"x\",\"image\":null},{\"text\":\"\\u00e9\"}]";
    REQ_OK(cm_req_parse_json((const uint8_t *)arr, strlen(arr), &lim, &b, &http));
    CHECK(b.n == 3 && b.array, "array of 3");
    CHECK(b.items[0].image_len == 5 && !b.items[0].text, "item 0 image only via data URL");
    CHECK(!b.items[1].image && b.items[1].text_len == 1, "item 1 text only (image null)");
    CHECK(b.items[2].text_len == 2 && (uint8_t)b.items[2].text[0] == 0xc3, "UTF-8 caption");
    cm_req_batch_free(&b);
    static const struct { const char *body; int http; const char *needle; } bad[] = {
        {"{\"text\":\"01234567890\"}", 413, "limit of 10"},
        {"[{},{},{},{}]", 413, "limit of 3"},
        {"[{\"text\":\"a\"}, 7]", 400, "item 1"},
        {"{\"image\":\"data:image/png,abc\"}", 400, "data URL"},
        {"{\"image\":\"\"}", 400, "empty"},
        {"{\"image\":\"a\"}", 400, "truncated"},
        {"{\"text\":1}", 400, "must be a string"},
        {"{\"text\":\"a\",\"text\":\"b\"}", 400, "twice"},
        {"{\"txt\":\"a\"}", 400, "\"txt\""},
        {"{\"text\":\"a\\u0000b\"}", 200, NULL},  /* cJSON stops at the NUL: "a" */
        {"nul", 400, "invalid JSON"},
        {"{}{}", 400, "after the value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        http = 0;
        cm_status st = cm_req_parse_json((const uint8_t *)bad[i].body, strlen(bad[i].body), &lim, &b, &http);
        if (bad[i].http == 200) { CHECK(st == CM_OK, "%s: %s", bad[i].body, cm_last_error()); cm_req_batch_free(&b); continue; }
        CHECK(st != CM_OK && http == bad[i].http, "%s: st %d http %d", bad[i].body, st, http);
        CHECK(st == CM_OK || strstr(cm_last_error(), bad[i].needle), "%s: message '%s' lacks '%s'", bad[i].body, cm_last_error(), bad[i].needle);
        CHECK(b.items == NULL && b.n == 0, "%s: nothing left behind", bad[i].body);
    }
}

static void test_multipart(void) {
    CmReqLimits lim = {100, 4};
    CmReqBatch b;
    int http = 0;
    const char body[] = "preamble\r\n--a b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.bin\"\r\n"
                        "Content-Type: application/octet-stream\r\n\r\n\x00\x01\r\n--a\r\n\r\n--a b\r\n"
                        "content-disposition: form-data; name=text\r\n\r\nhello there\r\n--a b--\r\n";
    REQ_OK(cm_req_parse_multipart("multipart/form-data; boundary=\"a b\"", (const uint8_t *)body, sizeof body - 1, &lim, &b, &http));
    CHECK(b.n == 1 && b.items[0].image_len == 9 && !memcmp(b.items[0].image, "\x00\x01\r\n--a\r\n", 9), "binary image part (len %zu)",
          b.items[0].image_len);
    CHECK(b.items[0].text && !strcmp(b.items[0].text, "hello there"), "text part");
    cm_req_batch_free(&b);
    static const struct { const char *ct, *body, *needle; } bad[] = {
        {"multipart/form-data", "--x\r\n", "boundary"},
        {"multipart/form-data; boundary=x", "no delimiter here", "no boundary line"},
        {"multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nabc", "no closing boundary"},
        {"multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nabc\r\n--x--", "unknown part"},
        {"multipart/form-data; boundary=x", "--x\r\nX: y\r\n\r\nabc\r\n--x--", "no Content-Disposition"},
        {"multipart/form-data; boundary=x", "--x--", "no parts"},
        {"multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=image\r\n\r\n\r\n--x--", "empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cm_status st = cm_req_parse_multipart(bad[i].ct, (const uint8_t *)bad[i].body, strlen(bad[i].body), &lim, &b, &http);
        CHECK(st != CM_OK && http == 400 && strstr(cm_last_error(), bad[i].needle), "case %zu: http %d '%s' lacks '%s'", i, http,
              cm_last_error(), bad[i].needle);
    }
}

static void test_dispatch_and_escape(void) {
    CmReqLimits lim = {100, 4};
    CmReqBatch b;
    int http = 0;
    CHECK(cm_req_parse("text/plain", (const uint8_t *)"x", 1, &lim, &b, &http) && http == 415 && strstr(cm_last_error(), "text/plain"), "415");
    CHECK(cm_req_parse(NULL, (const uint8_t *)"x", 1, &lim, &b, &http) && http == 415, "no type: 415");
    CHECK(cm_req_parse("application/jsonx", (const uint8_t *)"{}", 2, &lim, &b, &http) && http == 415, "prefix is not a match");
    REQ_OK(cm_req_parse("Application/JSON; charset=utf-8", (const uint8_t *)"{\"text\":\"a\"}", 12, &lim, &b, &http));
    cm_req_batch_free(&b);
    CmJBuf j = {0};
    cm_jbuf_str(&j, "a\"b\\c\n\x01\xc3\xa9");
    REQUIRE(j.s, "jbuf");
    CHECK(!strcmp(j.s, "\"a\\\"b\\\\c\\u000a\\u0001\xc3\xa9\""), "escaped: %s", j.s);
    cJSON *p = cJSON_Parse(j.s);
    CHECK(cJSON_IsString(p) && !strcmp(p->valuestring, "a\"b\\c\n\x01\xc3\xa9"), "round trip");
    cJSON_Delete(p);
    for (int i = 0; i < 2000; i++) cm_jbuf_printf(&j, "%d,", i);
    CHECK(!j.oom && j.len == strlen(j.s), "growth");
    cm_jbuf_free(&j);
}

int main(void) {
    RUN(test_base64);
    RUN(test_json);
    RUN(test_multipart);
    RUN(test_dispatch_and_escape);
    return tl_summary("test_serve_request");
}
