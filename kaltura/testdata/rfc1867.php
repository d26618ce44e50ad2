<?php
// What PHP read from a multipart request body, for the differential tests
// (rfc1867_test.go), in three base64 lines. Line 1: $_POST and $_FILES
// serialized, a stored file's tmp_name replaced by the md5 of its data.
// Line 2: the same without $_POST['ks']. Line 3: the keys of $_POST, as
// JSON.
function stored($t)
{
    if (is_array($t)) {
        return array_map('stored', $t);
    }
    return $t === '' ? '' : md5_file($t);
}
$files = [];
foreach ($_FILES as $k => $v) {
    if (is_array($v) && isset($v['tmp_name'])) {
        $v['tmp_name'] = stored($v['tmp_name']);
    }
    $files[$k] = $v;
}
$post = $_POST;
echo base64_encode(serialize([$post, $files])), "\n";
unset($post['ks']);
echo base64_encode(serialize([$post, $files])), "\n";
echo base64_encode(json_encode(array_map('strval', array_keys($_POST)), JSON_INVALID_UTF8_SUBSTITUTE)), "\n";
