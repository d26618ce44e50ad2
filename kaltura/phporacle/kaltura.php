<?php
// The oracle's PHP side: run by php-cgi on the request as the front end
// routes it (phporacle.go sets ORACLE_* to the routed script name, path info
// and class). It reproduces the parts of kaltura/server that decide which KS
// takes effect, and prints a JSON reading. Sources (kaltura/server):
// infraRequestUtils::getRequestParams (Venus-22.19.0), KalturaFrontController::run and
// handleMultiRequest, KalturaDispatcher::dispatch, playManifestAction,
// vendor/symfony request/sfWebRequest.class.php and controller/sfRouting.class.php.

$GLOBALS['oracle_warnings'] = array();
set_error_handler(function ($no, $str) {
	$GLOBALS['oracle_warnings'][] = $str;
	return true;
});

// The KS results the oracle gives minting calls, to follow {N:result:ks}.
const WIDGET_KS = 'a widget KS';
const MINTED_KS = 'a KS minted in the request';

$_SERVER['SCRIPT_NAME'] = getenv('ORACLE_SCRIPT_NAME');
$_SERVER['PATH_INFO'] = getenv('ORACLE_PATH_INFO');
$_SERVER['PHP_SELF'] = $_SERVER['SCRIPT_NAME'] . $_SERVER['PATH_INFO'];
$class = getenv('ORACLE_CLASS');

// infraRequestUtils::getUrlRequestParams and getRequestParams as of
// Venus-22.19.0, without the v3cache time truncation (no configuration).
// A path key "0" (falsy) ends the pairs; a last key without a value gets
// false.
function getUrlRequestParams()
{
	$scriptParts = explode('/', $_SERVER['SCRIPT_NAME']);
	$pathParts = array();
	if (isset($_SERVER['PHP_SELF']))
		$pathParts = explode('/', $_SERVER['PHP_SELF']);
	$pathParts = array_diff($pathParts, $scriptParts);
	$params = array();
	while (current($pathParts)) {
		$key = current($pathParts);
		$value = next($pathParts);
		next($pathParts);
		if (!array_key_exists($key, $params))
			$params[$key] = $value;
	}
	return array_replace_recursive($_GET, $params);
}

function getRequestParams()
{
	static $requestParams = null;
	if (!is_null($requestParams))
		return $requestParams;
	$params = getUrlRequestParams();
	$post = null;
	if (isset($_SERVER['CONTENT_TYPE'])) {
		if (strtolower($_SERVER['CONTENT_TYPE']) == 'application/json') {
			$requestBody = trim(file_get_contents("php://input"));
			if (str_starts_with($requestBody, '{') && str_ends_with($requestBody, '}'))
				$post = json_decode($requestBody, true);
		} elseif (strpos(strtolower($_SERVER['CONTENT_TYPE']), 'multipart/form-data') === 0 && isset($_POST['json'])) {
			$post = json_decode($_POST['json'], true);
		}
	}
	if (!$post)
		$post = $_POST;
	$requestParams = array_replace_recursive($post, $_FILES, $params);
	return $requestParams;
}

// The result a call gives, as far as a later {N:result…} reference to a KS
// can see it.
function oracle_result($service, $action)
{
	$sa = strtolower((string)$service) . '.' . strtolower((string)$action);
	switch ($sa) {
		case 'session.startwidgetsession':
			$o = new stdClass;
			$o->partnerId = 123;
			$o->ks = WIDGET_KS;
			$o->userId = 0;
			return $o;
		case 'apptoken.startsession':
		case 'session.startsession':
			$o = new stdClass;
			$o->ks = MINTED_KS;
			return $o;
		case 'session.start':
		case 'session.impersonate':
		case 'user.login':
		case 'user.loginbyloginid':
		case 'adminuser.login':
			return MINTED_KS;
	}
	return new stdClass;
}

function getValueFromObject($object, $path)
{
	$currentProperty = array_shift($path);
	if (is_null($currentProperty) || !strlen($currentProperty))
		return is_object($object) ? null : $object;
	if (is_array($object)) {
		if (!isset($object[$currentProperty]))
			return null;
		return getValueFromObject($object[$currentProperty], $path);
	}
	if (is_object($object) && property_exists($object, $currentProperty))
		return getValueFromObject($object->$currentProperty, $path);
	return null;
}

function getMultiRequestResultsPaths($params)
{
	$paths = array();
	foreach ($params as $key => $value) {
		if (is_array($value)) {
			$parsedPaths = getMultiRequestResultsPaths($value);
			if (count($parsedPaths))
				$paths[$key] = $parsedPaths;
		} elseif (preg_match('/\{[0-9]+:result:?(.*)?\}/', (string)$value, $matches)) {
			$paths[$key] = $matches[0];
		}
	}
	return $paths;
}

function replaceMultiRequestResults($index, array $keys, $params, $result)
{
	foreach ($keys as $key => $path) {
		if (isset($params[$key])) {
			if (is_array($path)) {
				$params[$key] = replaceMultiRequestResults($index, $path, $params[$key], $result);
			} elseif ($path && preg_match('/^\{([0-9]+):result:?(.*)?\}$/', $path, $matches)) {
				if (intval($matches[1]) == $index) {
					$valueFromObject = getValueFromObject($result, explode(':', $matches[2]));
					if (is_null($valueFromObject))
						$valueFromObject = '';
					$params[$key] = str_replace($path, $valueFromObject, $params[$key]);
				}
			}
		}
	}
	return $params;
}

// A KS as the dispatcher takes it: isset($params["ks"]) ? $params["ks"] : null.
function oracle_ks($params)
{
	return isset($params['ks']) ? $params['ks'] : null;
}

function oracle_exec($index, $service, $action, $ks, $entries)
{
	return array('index' => $index, 'service' => strtolower((string)$service),
		'action' => strtolower((string)$action), 'ks' => oracle_value($ks), 'entries' => $entries);
}

// The values of a call's parameters that name an entry: entryId, and the
// filter properties that select one, nested (filter[idEqual]) or flat
// (filter:idEqual, split later by Kaltura's deserializer).
function oracle_entries($params)
{
	$out = array();
	if (!is_array($params))
		return $out;
	if (array_key_exists('entryId', $params))
		$out[] = oracle_value($params['entryId']);
	foreach (array('redirectFromEntryId', 'entryIdEqual', 'idEqual', 'objectIdEqual', 'entryIdIn', 'idIn', 'objectIdIn') as $k) {
		if (isset($params['filter']) && is_array($params['filter']) && array_key_exists($k, $params['filter']))
			$out[] = oracle_value($params['filter'][$k]);
		if (array_key_exists('filter:' . $k, $params))
			$out[] = oracle_value($params['filter:' . $k]);
	}
	return $out;
}

// A value as JSON can carry any bytes: its PHP type and base64.
function oracle_value($v)
{
	if (is_null($v))
		return null;
	if (is_string($v))
		return array('type' => 'string', 'b64' => base64_encode($v));
	return array('type' => gettype($v), 'b64' => base64_encode(json_encode($v, JSON_PARTIAL_OUTPUT_ON_ERROR | JSON_INVALID_UTF8_SUBSTITUTE)));
}

// KalturaFrontController::handleMultiRequest, dispatching nothing.
function handleMultiRequest($allParams, array &$execs)
{
	$commonParams = array();
	$listOfRequests = array();
	$requestStartIndex = 1;
	$requestEndIndex = 1;
	foreach ($allParams as $paramName => $paramValue) {
		if (is_numeric($paramName)) {
			$paramName = intval($paramName);
			$requestStartIndex = min($requestStartIndex, $paramName);
			$requestEndIndex = max($requestEndIndex, $paramName);
			$listOfRequests[$paramName] = $paramValue;
			continue;
		}
		$explodedName = explode(':', $paramName, 2);
		if (count($explodedName) <= 1 || !is_numeric($explodedName[0])) {
			$commonParams[$paramName] = $paramValue;
		} else {
			$requestIndex = (int)$explodedName[0];
			$requestStartIndex = min($requestStartIndex, $requestIndex);
			$requestEndIndex = max($requestEndIndex, $requestIndex);
			$paramName = $explodedName[1];
			if (!array_key_exists($requestIndex, $listOfRequests))
				$listOfRequests[$requestIndex] = array();
			$listOfRequests[$requestIndex][$paramName] = $paramValue;
		}
	}
	$multiRequestResultsPaths = getMultiRequestResultsPaths($listOfRequests);
	$asSent = $listOfRequests; // the entries each call names, references unresolved
	$ordinal = 0;
	for ($i = $requestStartIndex; $i <= $requestEndIndex; $i++) {
		$currentParams = isset($listOfRequests[$i]) ? $listOfRequests[$i] : array();
		if (!isset($currentParams["service"]) || !isset($currentParams["action"]))
			break;
		$ordinal++;
		$currentService = $currentParams["service"];
		$currentAction = $currentParams["action"];
		if (isset($commonParams['clientTag']) && !isset($currentParams['clientTag']))
			$currentParams['clientTag'] = $commonParams['clientTag'];
		if (isset($commonParams['ks']) && !isset($currentParams['ks']))
			$currentParams['ks'] = $commonParams['ks'];
		if (isset($commonParams['partnerId']) && !isset($currentParams['partnerId']))
			$currentParams['partnerId'] = $commonParams['partnerId'];
		if (!is_array($currentParams))
			break; // Kaltura: "Malformed request"
		$execs[] = oracle_exec($i, $currentService, $currentAction, oracle_ks($currentParams),
			oracle_entries(isset($asSent[$i]) ? $asSent[$i] : array()));
		$currentResult = oracle_result($currentService, $currentAction);
		for ($next = $i + 1; $next <= count($listOfRequests); $next++) {
			if (isset($multiRequestResultsPaths[$next]))
				$listOfRequests[$next] = replaceMultiRequestResults($ordinal, $multiRequestResultsPaths[$next], $listOfRequests[$next], $currentResult);
		}
	}
}

// symfony 1.0's parameters for /:module/:action/*: $_GET, then the path
// pairs (sfRouting::parse), then $_POST (sfWebRequest::loadParameters).
function symfonyParams()
{
	$holder = $_GET;
	$url = preg_replace('#/+#', '/', '/' . ltrim($_SERVER['PATH_INFO'], '/'));
	if (preg_match('#^/([^/]+)/([^/]+)(?:/(.*))?$#', $url, $r)) {
		$out = array('module' => urldecode($r[1]), 'action' => urldecode($r[2]));
		if (isset($r[3])) {
			$pass = explode('/', $r[3]);
			$found = '';
			for ($i = 0, $max = count($pass); $i < $max; $i += 2) {
				if (!isset($pass[$i + 1]))
					continue;
				$found .= $pass[$i] . '=' . $pass[$i + 1] . '&';
			}
			parse_str($found, $pass);
			foreach ($pass as $key => $value)
				if ($key !== 'module' && $key !== 'action')
					$out[$key] = $value;
		}
		foreach ($out as $k => $v)
			$holder[$k] = $v;
	}
	foreach ($_POST as $k => $v)
		$holder[$k] = $v;
	return $holder;
}

$out = array('class' => $class, 'executions' => array());
try {
switch ($class) {
	case 'api':
		$params = getRequestParams();
		$service = isset($params["service"]) ? (string)$params["service"] : null;
		$action = isset($params["action"]) ? (string)$params["action"] : null;
		if ($service == "multirequest") {
			$out['multirequest'] = true;
			handleMultiRequest($params, $out['executions']);
		} else {
			$out['executions'][] = oracle_exec(0, $service, $action, oracle_ks($params), oracle_entries($params));
		}
		break;
	case 'playManifest':
		$params = getRequestParams();
		$urlToken = array_key_exists('kt', $params) ? $params['kt'] : null;
		$ksStr = array_key_exists('ks', $params) ? $params['ks'] : null;
		$ksHeader = isset($_SERVER['HTTP_X_KALTURA_KS']) ? stripslashes($_SERVER['HTTP_X_KALTURA_KS']) : null;
		if ($ksHeader)
			$ksStr = $ksHeader;
		$out['kt'] = oracle_value($urlToken);
		$out['executions'][] = array('ks' => oracle_value(($ksStr && !$urlToken) ? $ksStr : null),
			'entries' => array_key_exists('entryId', $params) ? array(oracle_value($params['entryId'])) : array());
		break;
	case 'asset':
		$params = symfonyParams();
		$out['executions'][] = array('ks' => oracle_value(isset($params['ks']) ? $params['ks'] : null),
			'entries' => array_key_exists('entry_id', $params) ? array(oracle_value($params['entry_id'])) : array());
		break;
}
} catch (Throwable $e) {
	// PHP fails the request: whatever ran before the failure still counts.
	$GLOBALS['oracle_warnings'][] = 'fatal: ' . $e->getMessage();
}
$dbg = JSON_PARTIAL_OUTPUT_ON_ERROR | JSON_INVALID_UTF8_SUBSTITUTE;
$out['get'] = json_encode($_GET, $dbg);
$out['post'] = json_encode($_POST, $dbg);
$out['files'] = json_encode($_FILES, $dbg);
$out['warnings'] = $GLOBALS['oracle_warnings'];
// To a file: php-cgi prints no body for HEAD.
file_put_contents(getenv('ORACLE_OUT'), json_encode($out, $dbg));
